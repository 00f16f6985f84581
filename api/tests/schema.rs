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
    let doc =
        async_graphql::parser::parse_schema(gateway_api::graphql::sdl()).expect("the SDL parses");
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

/// Every root operation's description ends with who may run it, as the permission matrix says
/// (`graphql::roles::OPERATIONS`, `permissions::who_may`), and the table lists no operation
/// the schema lacks.
#[test]
fn every_operation_says_who_may_run_it() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    use gateway_api::graphql::roles::{roles_line, OPERATIONS};
    let doc =
        async_graphql::parser::parse_schema(gateway_api::graphql::sdl()).expect("the SDL parses");
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let name = t.node.name.node.as_str();
        if !matches!(name, "Query" | "Mutation" | "SubscriptionRoot") {
            continue;
        }
        let TypeKind::Object(o) = &t.node.kind else {
            continue;
        };
        for f in &o.fields {
            let key = format!("{name}.{}", f.node.name.node);
            let Some((_, who)) = OPERATIONS.iter().find(|(k, _)| *k == key) else {
                wrong.push(format!("{key}: not in graphql::roles::OPERATIONS"));
                continue;
            };
            let expected = roles_line(*who);
            let description = f.node.description.as_ref().map(|d| d.node.as_str());
            let last = description.and_then(|d| d.lines().last()).unwrap_or("");
            if last.trim() != expected {
                wrong.push(format!("{key}: ends with `{last}`, not `{expected}`"));
            }
            seen.push(key);
        }
    }
    for (key, _) in OPERATIONS {
        if !seen.iter().any(|s| s == key) {
            wrong.push(format!("{key}: in OPERATIONS but not in the schema"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
