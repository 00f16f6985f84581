//! Invoice PDFs, drawn with printpdf and its built-in Helvetica (no font files to ship).

use printpdf::{BuiltinFont, IndirectFontRef, Mm, PdfDocument, PdfLayerReference};

use crate::billing::invoices::{bill_to_of, lines_of};
use crate::billing::quote::format_money;
use crate::db::models::Invoice;
use crate::error::{AppError, AppResult};

const SELLER: &[&str] = &[
    "Partner Network Programs",
    "One Partner Way",
    "Redmond, WA 98052, US",
];

struct Writer {
    layer: PdfLayerReference,
    regular: IndirectFontRef,
    bold: IndirectFontRef,
    y: f32,
}

impl Writer {
    fn text(&mut self, x: f32, s: &str, size: f32, bold: bool) {
        let font = if bold { &self.bold } else { &self.regular };
        self.layer.use_text(s, size, Mm(x), Mm(self.y), font);
    }

    fn line(&mut self, s: &str, size: f32, bold: bool) {
        self.text(20.0, s, size, bold);
        self.y -= size * 0.5 + 1.5;
    }

    fn gap(&mut self, mm: f32) {
        self.y -= mm;
    }
}

/// Characters outside WinAnsi cannot be drawn with a built-in font: replace them.
fn latin(s: &str) -> String {
    s.chars()
        .map(|c| if (c as u32) < 0x100 { c } else { '?' })
        .collect()
}

pub fn render(inv: &Invoice) -> AppResult<Vec<u8>> {
    let title = format!("Invoice {}", inv.number);
    let (doc, page, layer) = PdfDocument::new(&title, Mm(210.0), Mm(297.0), "invoice");
    let regular = doc
        .add_builtin_font(BuiltinFont::Helvetica)
        .map_err(AppError::internal)?;
    let bold = doc
        .add_builtin_font(BuiltinFont::HelveticaBold)
        .map_err(AppError::internal)?;
    let mut w = Writer {
        layer: doc.get_page(page).get_layer(layer),
        regular,
        bold,
        y: 275.0,
    };
    w.line(&title, 20.0, true);
    w.gap(4.0);
    for s in SELLER {
        w.line(s, 9.0, false);
    }
    w.gap(6.0);
    w.line(
        &format!("Issued: {}", inv.issued_at.format("%Y-%m-%d")),
        10.0,
        false,
    );
    w.line(
        &format!(
            "Period: {} to {}",
            inv.period_start.date_naive(),
            inv.period_end.date_naive()
        ),
        10.0,
        false,
    );
    w.gap(6.0);
    w.line("Bill to", 11.0, true);
    if let Some(b) = bill_to_of(inv) {
        w.line(&latin(&b.name), 10.0, false);
        w.line(&format!("MPN ID {}", b.mpn_id), 10.0, false);
        for l in &b.address_lines {
            w.line(&latin(l), 10.0, false);
        }
        let region = b.region.map(|r| format!(", {r}")).unwrap_or_default();
        w.line(
            &latin(&format!(
                "{} {}{region}, {}",
                b.postal_code, b.city, b.country
            )),
            10.0,
            false,
        );
    }
    w.gap(8.0);
    w.text(20.0, "Description", 10.0, true);
    w.text(160.0, "Amount", 10.0, true);
    w.gap(7.0);
    for l in lines_of(inv) {
        w.text(20.0, &latin(&l.description), 9.0, false);
        w.text(
            160.0,
            &format_money(l.amount_minor, &inv.currency),
            9.0,
            false,
        );
        w.gap(6.0);
    }
    w.gap(4.0);
    let totals = [
        ("Subtotal", inv.subtotal_minor - inv.discount_minor, false),
        (
            &*format!(
                "Tax ({}.{:02}%)",
                inv.tax_rate_bp / 100,
                inv.tax_rate_bp % 100
            ),
            inv.tax_minor,
            false,
        ),
        ("Total", inv.total_minor, true),
    ];
    for (label, amount, bold) in totals {
        w.text(120.0, label, 10.0, bold);
        w.text(160.0, &format_money(amount, &inv.currency), 10.0, bold);
        w.gap(6.0);
    }
    doc.save_to_bytes().map_err(AppError::internal)
}
