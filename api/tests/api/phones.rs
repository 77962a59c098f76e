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

/// International numbers keep every digit in every tenant region: a German mobile in a
/// US tenant is that German mobile (not another person's number with its `1` eaten), and
/// a webhook about it is linked to that customer.
async fn international_numbers_are_never_rewritten(app: TestApp) {
    let us = app.create_tenant("US", "US").await;
    for (raw, e164) in [
        ("+4915112345678", "+4915112345678"),
        ("+44 121 496 0018", "+441214960018"),
        ("011 33 1 23 45 67 89", "+33123456789"),
        ("+55 11 91234-5678", "+5511912345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("(650) 253-0000", "+16502530000"),
    ] {
        let body = app.ok(&us.key, CREATE, json!({ "p": raw })).await;
        assert_eq!(body["createCustomer"]["phoneNumber"], e164, "{raw}");
    }
    app.create_agent_for(&us.key, "BOLNA", crate::webhooks::AGENT)
        .await;
    let mut report = crate::webhooks::bolna_report("exec-de", crate::webhooks::AGENT, "completed");
    report["telephony_data"]["to_number"] = json!("+4915112345678");
    let (status, _) = app
        .webhook("bolna", &us.webhook_token, report.to_string())
        .await;
    assert_eq!(status, 200);
    let linked = crate::common::eventually(15, || async {
        let data = app
            .ok(
                &us.key,
                "{ calls(first: 1) { edges { node { customer { phoneNumber } } } } }",
                json!({}),
            )
            .await;
        let n = data["calls"]["edges"][0]["node"]["customer"]["phoneNumber"].clone();
        n.is_string().then_some(n)
    })
    .await;
    assert_eq!(linked, "+4915112345678");
    let all = app
        .ok(&us.key, "{ customers { totalCount } }", json!({}))
        .await;
    assert_eq!(
        all["customers"]["totalCount"], 6,
        "the webhook created a second customer"
    );

    let ru = app.create_tenant("RU", "RU").await;
    let body = app.ok(&ru.key, CREATE, json!({ "p": "+4989123456" })).await;
    assert_eq!(body["createCustomer"]["phoneNumber"], "+4989123456");
    let body = app
        .ok(&ru.key, CREATE, json!({ "p": "810 44 20 7946 0018" }))
        .await;
    assert_eq!(body["createCustomer"]["phoneNumber"], "+442079460018");
    for region in ["GB", "IN", "DE"] {
        let t = app.create_tenant(region, region).await;
        let body = app
            .ok(&t.key, CREATE, json!({ "p": "+390612345678" }))
            .await;
        assert_eq!(
            body["createCustomer"]["phoneNumber"], "+390612345678",
            "{region}"
        );
    }
}
on_both!(
    international_numbers_are_never_rewritten,
    international_numbers_are_never_rewritten
);
