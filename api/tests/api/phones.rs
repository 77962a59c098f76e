//! Phone numbers: one customer per number in any format; garbage is a clear error.

use serde_json::json;

use crate::common::{TestApp, code};
use crate::on_both;

const CREATE: &str =
    "mutation($p: String!) { createCustomer(input: {phoneNumber: $p}) { id phoneNumber } }";

async fn phone_numbers(app: TestApp) {
    let t = app.create_tenant("India", "IN").await;
    let first = app.ok(&t.key, CREATE, json!({ "p": "7471180076" })).await;
    assert_eq!(first["createCustomer"]["phoneNumber"], "+917471180076");
    let id = first["createCustomer"]["id"].clone();

    for same in ["07471180076", "+91 74711 80076", "+917471180076"] {
        let body = app.gql(Some(&t.key), CREATE, json!({ "p": same })).await;
        assert_eq!(code(&body), "CONFLICT", "{same}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "phoneNumber");
        let found = app
            .ok(
                &t.key,
                "query($p: String!) { customerByPhone(phone: $p) { id } }",
                json!({ "p": same }),
            )
            .await;
        assert_eq!(found["customerByPhone"]["id"], id, "{same}");
    }

    let forty = "9".repeat(40);
    for garbage in [
        "",
        "   ",
        "hello",
        "74711abc76",
        "📞📞📞",
        "☎ 7471180076",
        forty.as_str(),
        "+999 123",
        "12",
        "0000000000",
    ] {
        let body = app.gql(Some(&t.key), CREATE, json!({ "p": garbage })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{garbage:?}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "phoneNumber",
            "{garbage:?}"
        );
        let lookup = app
            .gql(
                Some(&t.key),
                "query($p: String!) { customerByPhone(phone: $p) { id } }",
                json!({ "p": garbage }),
            )
            .await;
        assert_eq!(code(&lookup), "BAD_USER_INPUT", "{garbage:?}");
    }

    // A number of another country keeps its own country code.
    let us = app
        .ok(&t.key, CREATE, json!({ "p": "+1 (650) 253-0000" }))
        .await;
    assert_eq!(us["createCustomer"]["phoneNumber"], "+16502530000");
    // Read in India, this US national number is not a valid Indian number.
    let body = app
        .gql(Some(&t.key), CREATE, json!({ "p": "(305) 555-0123" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");

    // Only the good ones were stored.
    let all = app
        .ok(&t.key, "{ customers { totalCount } }", json!({}))
        .await;
    assert_eq!(all["customers"]["totalCount"], 2);

    // Changing a number to one already taken is a CONFLICT and changes nothing.
    let body = app
        .gql(
            Some(&t.key),
            "mutation($id: ID!) { updateCustomer(id: $id, input: {phoneNumber: \"+16502530000\"}) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    let again = app
        .ok(
            &t.key,
            "query($id: ID!) { customer(id: $id) { phoneNumber } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(again["customer"]["phoneNumber"], "+917471180076");
}
on_both!(phone_normalisation, phone_numbers);
