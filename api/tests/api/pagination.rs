//! Relay cursors: stable while rows are inserted, strict on bad arguments.

use std::collections::HashSet;

use serde_json::json;

use crate::common::{TestApp, code};
use crate::on_both;

const PAGE: &str = "query($n: Int, $a: String) { customers(first: $n, after: $a) { totalCount edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }";

async fn cursors(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let mut originals = Vec::new();
    for i in 0..25 {
        originals.push(
            app.create_customer(
                &t.key,
                &format!("+1650253{:04}", 2000 + i),
                &format!("old {i}"),
            )
            .await,
        );
    }
    let first = app.ok(&t.key, PAGE, json!({ "n": 10 })).await["customers"].clone();
    assert_eq!(first["totalCount"], 25);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    // Newest first.
    assert_eq!(first["edges"][0]["node"]["id"], originals[24].as_str());

    // Inserts after the first page must not shift what follows the cursor.
    for i in 0..5 {
        app.create_customer(
            &t.key,
            &format!("+1650253{:04}", 3000 + i),
            &format!("new {i}"),
        )
        .await;
    }
    let mut seen: Vec<String> = first["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = first["pageInfo"]["endCursor"].clone();
    loop {
        let page = app.ok(&t.key, PAGE, json!({ "n": 10, "a": cursor })).await["customers"].clone();
        assert_eq!(page["totalCount"], 30);
        for e in page["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        cursor = page["pageInfo"]["endCursor"].clone();
    }
    let mut expected = originals.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "walking the pages returns each original exactly once, in order"
    );
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);

    // Bad arguments are user errors naming the argument.
    for (vars, field) in [
        (json!({ "n": 0 }), "first"),
        (json!({ "n": 101 }), "first"),
        (json!({ "n": -1 }), "first"),
        (json!({ "n": 5, "a": "not-a-cursor" }), "after"),
    ] {
        let body = app.gql(Some(&t.key), PAGE, vars).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    let ok = app.ok(&t.key, PAGE, json!({ "n": 100 })).await;
    assert_eq!(ok["customers"]["edges"].as_array().unwrap().len(), 30);
    let default = app.ok(&t.key, PAGE, json!({})).await;
    assert_eq!(default["customers"]["edges"].as_array().unwrap().len(), 20);
}
on_both!(cursor_pagination, cursors);
