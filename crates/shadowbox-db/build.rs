//! Rebuilds the crate when a migration is added or changed: `MIGRATOR`
//! embeds `migrations/` when it compiles, and cargo does not watch that
//! folder by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
