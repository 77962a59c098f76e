//! `schema.graphql` is generated from the code; this fails when it drifts.
//! Run with `UPDATE_SCHEMA=1` to rewrite it.

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let generated = api::graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test -p api --test api schema` and commit it"
    );
}
