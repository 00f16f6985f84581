//! The report: a table on stdout and in docs/BENCHMARKS.md (between markers, so the
//! hand-written analysis around it stays), and the dashboard latency plot as SVG.

use std::fmt::Write;
use std::path::Path;

use crate::load::{Outcome, Pace};
use crate::scenarios::{Dashboard, Emails, Jobs, Purchase, Renewals};
use crate::{Args, Bench};

pub struct Setup {
    pub tables: Vec<(String, i64)>,
    pub dashboard_subscriptions: i64,
    pub dashboard_benefit_rows: i64,
    pub build_secs: f64,
    pub postgres: String,
    /// The server settings that bear on write throughput (`fsync`, `synchronous_commit`, …).
    pub postgres_settings: String,
    pub redis: String,
}

pub struct Results {
    pub setup: Setup,
    pub dashboard: Option<Dashboard>,
    pub purchase: Option<Purchase>,
    pub emails: Option<Emails>,
    pub renewals: Option<Renewals>,
    pub jobs: Option<Jobs>,
    /// Per process (api, worker, and with `--pair` the second ones): peak RSS (VmHWM) and
    /// RSS at the end, MiB.
    pub memory: Vec<(&'static str, f64, f64)>,
    /// `--pair`: two workers share the jobs.
    pub pair: bool,
}

const BEGIN: &str = "<!-- bench:results (written by scripts/bench; edits here are replaced) -->";
const END: &str = "<!-- /bench:results -->";
pub const PLOT: &str = "dashboard-latency.svg";

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

impl Results {
    pub fn new(setup: Setup) -> Self {
        Self {
            setup,
            dashboard: None,
            purchase: None,
            emails: None,
            renewals: None,
            jobs: None,
            memory: Vec::new(),
            pair: false,
        }
    }

    /// VmHWM is the kernel's own peak since each process started.
    pub fn sample_memory(&mut self, bench: &Bench) {
        use crate::system::{peak_rss_mib, rss_mib};
        let before = std::mem::take(&mut self.memory);
        for (name, pid) in bench.processes() {
            let earlier = before
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or(0.0, |m| m.1);
            self.memory.push((
                name,
                peak_rss_mib(pid).unwrap_or(earlier),
                rss_mib(pid).unwrap_or(0.0),
            ));
        }
    }

    fn workers(&self) -> &'static str {
        if self.pair {
            "two workers"
        } else {
            "one worker"
        }
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| Scenario | Target | Measured | Met |");
        let _ = writeln!(t, "|---|---|---|---|");
        if let Some(d) = &self.dashboard {
            let o = &d.outcome;
            let max_statements = d
                .by_list_size
                .iter()
                .map(|l| l.statements)
                .chain(std::iter::once(o.statements.max()))
                .max()
                .unwrap_or(0);
            let _ = writeln!(
                t,
                "| Dashboard, {} connections, {:.0} s, closed loop: throughput | ≥ 2,000 req/s | {:.0} req/s ({} ok, {} errors) | {} |",
                d.connections,
                o.elapsed.as_secs_f64(),
                o.rps(),
                o.ok,
                o.errors,
                met(o.rps() >= 2000.0 && o.errors == 0)
            );
            latency_rows(
                &mut t,
                "Dashboard",
                "req/s",
                2000.0,
                25.0,
                o,
                d.at_rate.as_ref(),
            );
            let sizes: Vec<String> = d
                .by_list_size
                .iter()
                .map(|l| {
                    format!(
                        "{}: {} subscriptions, {} benefits → {}",
                        l.label, l.subscriptions, l.benefits, l.statements
                    )
                })
                .collect();
            let _ = writeln!(
                t,
                "| Dashboard: SQL statements per request | ≤ 6 | max {} (mean {:.2} under load); {} | {} |",
                max_statements,
                o.statements.mean(),
                sizes.join("; "),
                met(max_statements <= 6)
            );
        }
        if let Some(p) = &self.purchase {
            let o = &p.outcome;
            let _ = writeln!(
                t,
                "| Purchase by card, {} connections, {:.0} s, closed loop: throughput | ≥ 300 /s | {:.0} /s ({} paid, {} errors{}) | {} |",
                p.connections,
                o.elapsed.as_secs_f64(),
                o.rps(),
                o.ok,
                o.errors,
                o.first_error
                    .as_ref()
                    .map(|e| format!(", first: {}", e.chars().take(120).collect::<String>()))
                    .unwrap_or_default(),
                met(o.rps() >= 300.0 && o.errors == 0)
            );
            latency_rows(&mut t, "Purchase", "/s", 300.0, 50.0, o, p.at_rate.as_ref());
            let _ = writeln!(
                t,
                "| Purchase: integrity | 1 order and 1 charge per purchase | {} paid orders, {} charges, {} partners with two; {:.1} SQL statements per purchase | {} |",
                p.orders_paid,
                p.charges,
                p.duplicates,
                o.statements.mean(),
                met(p.duplicates == 0 && p.charges == p.orders_paid)
            );
        }
        if let Some(e) = &self.emails {
            let rate = f64::from(e.jobs) / e.delivered_secs;
            let _ = writeln!(
                t,
                "| {} email jobs, {}: end to end | ≥ 5,000 jobs/s | {:.0} jobs/s ({} delivered in {:.1} s) | {} |",
                e.jobs,
                self.workers(),
                rate,
                e.delivered,
                e.delivered_secs,
                met(rate >= 5000.0 && e.delivered == i64::from(e.jobs))
            );
            let _ = writeln!(
                t,
                "| Emails: outbox → Redis | | all relayed after {:.1} s ({:.0} jobs/s; Redis held ≤ {} waiting) | |",
                e.relayed_secs,
                f64::from(e.jobs) / e.relayed_secs,
                e.peak_redis_waiting
            );
            let _ = writeln!(
                t,
                "| Emails: worker SQL statements per job | | {:.1} | |",
                e.statements_per_job
            );
            let _ = writeln!(
                t,
                "| Emails: Redis → done (SMTP accepted) | | first at {:.2} s, last at {:.1} s: {:.0} jobs/s; SMTP sink accepted {} | |",
                e.first_sent_secs,
                e.delivered_secs,
                f64::from(e.jobs) / (e.delivered_secs - e.first_sent_secs),
                e.smtp_accepted
            );
        }
        if let Some(r) = &self.renewals {
            let _ = writeln!(
                t,
                "| Renewal storm: {} anniversaries at one test-clock instant | all charged and invoiced ≤ 60 s | {} renewed, {} invoiced; first after {:.1} s, last after {:.1} s ({:.0} /s) | {} |",
                r.subscriptions,
                r.renewed,
                r.invoiced,
                r.first_secs,
                r.secs,
                r.renewed as f64 / r.secs,
                met(r.secs <= 60.0 && r.invoiced == i64::from(r.subscriptions))
            );
            let _ = writeln!(
                t,
                "| Renewal storm: duplicates | 0 | {} charges; {} subscriptions charged twice; {} extra renewal orders | {} |",
                r.charges,
                r.duplicate_charges,
                r.duplicate_orders,
                met(r.duplicate_charges == 0 && r.duplicate_orders == 0)
            );
            let _ = writeln!(
                t,
                "| Renewal storm: worker SQL statements per renewal | | {:.1} | |",
                r.statements_per_renewal
            );
        }
        if let Some(j) = &self.jobs {
            let rate = f64::from(j.jobs) / j.done_secs;
            let _ = writeln!(
                t,
                "| {} due-action jobs (one each, nothing to do), {}: commit to last done | ≥ 10,000 jobs/s | {:.0} jobs/s (all done after {:.1} s) | {} |",
                j.jobs,
                self.workers(),
                rate,
                j.done_secs,
                met(rate >= 10_000.0)
            );
            let _ = writeln!(
                t,
                "| Jobs: worker SQL statements per job | ≤ 2 | {:.2} (relay and sweep included); all relayed after {:.1} s; Redis held ≤ {} waiting | {} |",
                j.statements_per_job,
                j.relayed_secs,
                j.peak_redis_waiting,
                met(j.statements_per_job <= 2.0)
            );
            let seconds: Vec<String> = j.per_second.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                t,
                "| Jobs: done in each second | | {} | |",
                seconds.join(", ")
            );
        }
        let peaks: Vec<String> = self
            .memory
            .iter()
            .map(|(name, peak, _)| format!("{name} {peak:.0} MiB"))
            .collect();
        let ends: Vec<String> = self
            .memory
            .iter()
            .map(|(_, _, end)| format!("{end:.0}"))
            .collect();
        let _ = writeln!(
            t,
            "| Memory: peak RSS (VmHWM) over all runs | ≤ 150 MB each | {} (at the end: {} MiB) | {} |",
            peaks.join(", "),
            ends.join(" / "),
            met(self.memory.iter().all(|(_, peak, _)| *peak <= 143.0))
        );
        t
    }

    fn cpu_table(&self) -> String {
        let mut t = String::from(
            "| Scenario | Machine busy | Host steal | Machine CPU per operation | api (cores) | worker (cores) |\n|---|---|---|---|---|---|\n",
        );
        let rows = [
            (
                "Dashboard",
                "request",
                self.dashboard
                    .as_ref()
                    .map(|d| (&d.cpu, d.cpu.ms_per_op(d.outcome.rps()))),
            ),
            (
                "Purchase",
                "purchase",
                self.purchase
                    .as_ref()
                    .map(|p| (&p.cpu, p.cpu.ms_per_op(p.outcome.rps()))),
            ),
            (
                "Emails",
                "email",
                self.emails
                    .as_ref()
                    .map(|e| (&e.cpu, e.cpu.ms_per_op_of(e.delivered as f64))),
            ),
            (
                "Jobs",
                "job",
                self.jobs
                    .as_ref()
                    .map(|j| (&j.cpu, j.cpu.ms_per_op_of(f64::from(j.jobs)))),
            ),
            (
                "Renewal storm",
                "renewal",
                self.renewals
                    .as_ref()
                    .map(|r| (&r.cpu, r.cpu.ms_per_op_of(r.renewed as f64))),
            ),
        ];
        for (name, op, cpu) in rows {
            if let Some((c, ms)) = cpu {
                let _ = writeln!(
                    t,
                    "| {name} | {:.0} % | {:.0} % | {ms:.2} ms per {op} | {:.2} | {:.2} |",
                    c.machine, c.steal, c.api, c.worker
                );
            }
        }
        t
    }
}

fn percentiles(o: &Outcome) -> String {
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        o.ms(0.5),
        o.ms(0.9),
        o.ms(0.99),
        o.ms(0.999),
        o.latency.max() as f64 / 1000.0
    )
}

/// The latency rows of a scenario. The target is a p99 at the target rate, so it is judged
/// on the open-loop run at that rate when there is one: it must answer the whole rate
/// (within 1 %, no errors) with its p99 under the limit. The closed loop's latency is shown
/// too; it is mostly queueing (connections ÷ throughput on average), which is why a closed
/// loop alone cannot tell whether the system answers fast at a given load.
fn latency_rows(
    t: &mut String,
    name: &str,
    unit: &str,
    rate_target: f64,
    p99_target_ms: f64,
    closed: &Outcome,
    at_rate: Option<&Outcome>,
) {
    let target = format!("p99 ≤ {p99_target_ms:.0} ms at {rate_target:.0} {unit}");
    match at_rate {
        Some(o) => {
            let (offered, arrivals) = match o.pace {
                Pace::Rate(r) => (r, "evenly spaced"),
                Pace::Poisson(r) => (r, "Poisson arrivals"),
                Pace::Closed => (0.0, ""),
            };
            let kept_up = o.rps() >= 0.99 * offered && o.errors == 0;
            let _ = writeln!(
                t,
                "| {name}: latency at {offered:.0} {unit} offered (open loop, {arrivals}, same connections, {:.0} s) | {target} | answered {:.0} {unit} ({} ok, {} errors); {} | {} |",
                o.elapsed.as_secs_f64(),
                o.rps(),
                o.ok,
                o.errors,
                percentiles(o),
                met(kept_up && offered >= rate_target && o.ms(0.99) <= p99_target_ms)
            );
            let seconds: Vec<String> = o
                .seconds
                .iter()
                .map(|s| {
                    format!(
                        "{} ({:.0})",
                        s.ok,
                        s.latency.value_at_quantile(0.99) as f64 / 1000.0
                    )
                })
                .collect();
            let _ = writeln!(
                t,
                "| {name}: each second of the open loop, answered (p99 ms) | | {} | |",
                seconds.join(", ")
            );
            let _ = writeln!(
                t,
                "| {name}: latency in the closed loop (saturated) | | {} | |",
                percentiles(closed)
            );
        }
        None => {
            let _ = writeln!(
                t,
                "| {name}: latency (closed loop) | {target} | {} | {} |",
                percentiles(closed),
                met(closed.rps() >= rate_target && closed.ms(0.99) <= p99_target_ms)
            );
        }
    }
}

fn curve(o: &Outcome, quantiles: &[f64]) -> Vec<f64> {
    quantiles
        .iter()
        .map(|q| o.latency.value_at_quantile(*q) as f64 / 1000.0)
        .collect()
}

/// The dashboard's latency by percentile (HdrHistogram style: the x axis spreads the tail).
fn plot(d: &Dashboard) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 420.0, 70.0, 60.0, 40.0, 40.0);
    let nines = 4.0; // up to 99.99 %
    let quantiles: Vec<f64> = (0..=200)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) * nines / 200.0))
        .collect();
    let mut series: Vec<(String, &str, Vec<f64>)> = Vec::new();
    if let Some(o) = &d.at_rate {
        let label = match o.pace {
            Pace::Rate(r) | Pace::Poisson(r) => {
                format!("{r:.0} req/s offered (open loop): {:.0} answered", o.rps())
            }
            Pace::Closed => String::new(),
        };
        series.push((label, "#1f5fbf", curve(o, &quantiles)));
    }
    series.push((
        format!("closed loop, saturated: {:.0} req/s", d.outcome.rps()),
        "#999",
        curve(&d.outcome, &quantiles),
    ));
    let ymax = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().cloned())
        .fold(25.0f64, f64::max)
        .max(1.0)
        .ceil();
    let x = |q: f64| left + (-(1.0 - q).max(1e-9).log10() / nines) * (w - left - right);
    let y = |ms: f64| h - bottom - (ms / ymax) * (h - bottom - top);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">Dashboard query latency by percentile ({} connections)</text>",
        w / 2.0,
        d.connections,
    );
    for (q, label) in [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
    ] {
        let xx = x(q);
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            h - bottom,
            h - bottom + 18.0
        );
    }
    let step = if ymax > 100.0 {
        20.0
    } else if ymax > 40.0 {
        10.0
    } else {
        5.0
    };
    let mut v = 0.0;
    while v <= ymax {
        let yy = y(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0} ms</text>",
            w - right,
            left - 6.0,
            yy + 4.0
        );
        v += step;
    }
    // The target: p99 ≤ 25 ms.
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/><text x=\"{1:.1}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"#c00\">target: p99 ≤ 25 ms</text>",
        y(25.0),
        w - right,
        y(25.0) - 6.0
    );
    for (i, (label, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> = quantiles
            .iter()
            .zip(values)
            .map(|(q, v)| format!("{:.1},{:.1}", x(*q), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let ly = top + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{ly:.1}\" x2=\"{1:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{2:.1}\" y=\"{3:.1}\">{label}</text>",
            left + 12.0,
            left + 36.0,
            left + 42.0,
            ly + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile</text>\n</svg>",
        w / 2.0,
        h - 16.0
    );
    s
}

pub fn write(out: &Path, r: &Results, args: &Args) -> anyhow::Result<()> {
    let mut body = String::new();
    let _ = writeln!(body, "{BEGIN}");
    let _ = writeln!(
        body,
        "Last run: {} (UTC). Command: `scripts/bench` (`pbg-bench {}`).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        std::env::args()
            .skip(1)
            .map(|a| match std::env::current_dir() {
                Ok(d) => a.replace(&format!("{}/", d.display()), ""),
                Err(_) => a,
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(body, "### Machine\n");
    let _ = writeln!(body, "| | |\n|---|---|");
    for (k, v) in crate::system::describe_machine() {
        let _ = writeln!(body, "| {k} | {v} |");
    }
    let _ = writeln!(
        body,
        "| Services | PostgreSQL {}, Redis {}, api + worker (release build), load generator and SMTP sink (`pbg-bench`): all on this machine |",
        r.setup.postgres, r.setup.redis
    );
    let _ = writeln!(
        body,
        "| PostgreSQL settings | {} |",
        r.setup.postgres_settings
    );
    let _ = writeln!(
        body,
        "| Production-like | RS256 partner tokens checked against a JWKS; the dashboard document with variables and orders; the product's default relay (200 ms), sweep (10 s) and worker poll (250 ms) intervals; release builds |"
    );
    let _ = writeln!(
        body,
        "| Processes | {} |",
        if args.pair {
            "two apis and two workers (`--pair`), the load spread over both apis, through a three-master Redis Cluster and PgBouncer 1.18 in transaction mode (`DATABASE_POOLER=transaction`; LISTEN and migrations on `DATABASE_DIRECT_URL`)"
        } else {
            "one api and one worker, straight to PostgreSQL and one Redis"
        }
    );
    let _ = writeln!(body, "\n### Data set\n");
    let _ = writeln!(
        body,
        "{} dashboard partners with {} subscriptions and {} benefit rows (entitlements, product keys, seat assignments, Azure credit grants); {} partners who buy during the purchase run; {} storm partners. Built in {:.0} s with set-based SQL. Rows per table:\n",
        args.partners,
        r.setup.dashboard_subscriptions,
        r.setup.dashboard_benefit_rows,
        args.purchase_partners,
        r.renewals.as_ref().map(|x| x.subscriptions).unwrap_or(0),
        r.setup.build_secs
    );
    let tables: Vec<String> = r
        .setup
        .tables
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    let _ = writeln!(body, "{}\n", tables.join(" · "));
    let _ = writeln!(body, "### Results\n");
    body.push_str(&r.table());
    let _ = writeln!(
        body,
        "\nCPU during each scenario (closed loops: warm-up included). Machine CPU per operation is \
         the machine's busy time without host steal, divided by the operations done: it compares \
         two builds more steadily than throughput on a machine whose speed varies.\n"
    );
    body.push_str(&r.cpu_table());
    if let Some(d) = &r.dashboard {
        let plot_path = out.with_file_name(PLOT);
        std::fs::write(&plot_path, plot(d))?;
        let _ = writeln!(body, "\n![Dashboard latency by percentile]({PLOT})");
    }
    let _ = writeln!(body, "{END}");

    let existing = std::fs::read_to_string(out).unwrap_or_default();
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(a), Some(b)) if b > a => format!(
            "{}{}{}",
            &existing[..a],
            body.trim_end(),
            &existing[b + END.len()..]
        ),
        _ => format!("# Benchmarks\n\n{body}"),
    };
    std::fs::write(out, text)?;
    Ok(())
}
