// The migrations are embedded (domain/src/db/mod.rs): rebuild when one is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
