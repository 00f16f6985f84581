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
