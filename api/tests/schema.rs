//! `schema.graphql` is the checked-in SDL. This fails when the code's schema drifts from it;
//! `UPDATE_SCHEMA=1 cargo test -p gateway-api --test schema` rewrites it.

#[test]
fn schema_graphql_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    let sdl = gateway_api::graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(&path, &sdl).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == sdl,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test -p gateway-api --test schema` and commit it"
    );
}

/// Every type, field, argument, input field and enum value of the SDL (`schema.graphql`, which
/// the test above holds to the code) has a description (directives are GraphQL's own and
/// described by the spec). Lists what lacks one.
#[test]
fn every_element_of_the_sdl_is_described() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql::parser::parse_schema(gateway_api::graphql::sdl())
        .expect("the SDL parses");
    let described = |d: &Option<async_graphql::Positioned<String>>| {
        d.as_ref().is_some_and(|d| !d.node.trim().is_empty())
    };
    let (mut total, mut missing) = (0usize, Vec::new());
    let mut count = |ok: bool, what: String| {
        total += 1;
        if !ok {
            missing.push(what);
        }
    };
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let t = &t.node;
        let name = t.name.node.as_str();
        count(described(&t.description), format!("type {name}"));
        let fields = match &t.kind {
            TypeKind::Object(o) => Some(&o.fields),
            TypeKind::Interface(i) => Some(&i.fields),
            _ => None,
        };
        for f in fields.into_iter().flatten() {
            let f = &f.node;
            count(
                described(&f.description),
                format!("field {name}.{}", f.name.node),
            );
            for a in &f.arguments {
                count(
                    described(&a.node.description),
                    format!("argument {name}.{}({})", f.name.node, a.node.name.node),
                );
            }
        }
        if let TypeKind::InputObject(i) = &t.kind {
            for f in &i.fields {
                count(
                    described(&f.node.description),
                    format!("input field {name}.{}", f.node.name.node),
                );
            }
        }
        if let TypeKind::Enum(e) = &t.kind {
            for v in &e.values {
                count(
                    described(&v.node.description),
                    format!("enum value {name}.{}", v.node.value.node),
                );
            }
        }
    }
    let coverage = 100.0 * (total - missing.len()) as f64 / total as f64;
    println!(
        "SDL descriptions: {} of {total} ({coverage:.1} %)",
        total - missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {total} schema elements have no description ({coverage:.1} % described):\n{}",
        missing.len(),
        missing.join("\n")
    );
}
