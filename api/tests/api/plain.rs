//! Rows built at once (`graphql::plain`) answer byte for byte as the derived resolvers do.
//! Each query is sent twice: as written, which takes the quick path where it can, and
//! with every selection inside an inline fragment, which always takes the derived one.

use serde_json::json;

use crate::common::TestApp;
use crate::on_both;

const CALL_FIELDS: &str = "__typename id provider providerExecutionId providerAgentId errorMessage \
     providerCallId direction status fromNumber toNumber startedAt endedAt durationSeconds cost \
     recordingUrl hangupReason createdAt updatedAt callId: id";
const CUSTOMER_FIELDS: &str = "__typename id phoneNumber name email status tags leadScore segment \
     notes source lastContactedAt createdAt updatedAt number: phoneNumber";

/// The raw body of a GraphQL response: field order and every byte count here.
async fn raw(app: &TestApp, key: &str, query: &str, variables: serde_json::Value) -> String {
    app.gql_text(Some(key), query, variables).await
}

async fn same_answers(app: TestApp) {
    let t = app.create_tenant("Plain", "US").await;
    let agent = app.create_agent(&t.key, "Ava").await;
    let mut customers = Vec::new();
    for i in 0..3 {
        let id = app
            .create_customer(
                &t.key,
                &format!("+1650253{:04}", 4000 + i),
                &format!("Lead {i}"),
            )
            .await;
        for _ in 0..=i {
            app.insert_call(&t.id, Some(&id), Some(&agent)).await;
        }
        customers.push(id);
    }
    app.ok(
        &t.key,
        "mutation($id: ID!) { updateCustomer(id: $id, input: { tags: [\"vip\", \"hindi\"], leadScore: 61.5, notes: \"\\\"quoted\\\" é\" }) { id } }",
        json!({ "id": customers[0] }),
    )
    .await;

    let wrapped = |ty: &str, fields: &str| format!("... on {ty} {{ {fields} }}");
    let cases = [
        // The customers page: calls' edges and nodes take the quick path.
        (
            format!(
                "{{ customers(first: 10) {{ edges {{ cursor node {{ {CUSTOMER_FIELDS} calls(first: 5) {{ edges {{ cursor node {{ {CALL_FIELDS} }} }} }} }} }} }} }}"
            ),
            format!(
                "{{ customers(first: 10) {{ edges {{ cursor node {{ {} calls(first: 5) {{ edges {{ {} }} }} }} }} }} }}",
                wrapped("Customer", CUSTOMER_FIELDS),
                wrapped(
                    "CallEdge",
                    &format!("cursor node {{ {} }}", wrapped("Call", CALL_FIELDS))
                ),
            ),
        ),
        // Customers whose every field is plain.
        (
            format!(
                "{{ customers(first: 10) {{ edges {{ cursor node {{ {CUSTOMER_FIELDS} }} }} }} }}"
            ),
            format!(
                "{{ customers(first: 10) {{ edges {{ cursor node {{ {} }} }} }} }}",
                wrapped("Customer", CUSTOMER_FIELDS)
            ),
        ),
        // A field that is not plain (a long text) sends its row down the derived path.
        (
            "{ calls(first: 10) { edges { node { id status transcript summary } } } }".to_owned(),
            format!(
                "{{ calls(first: 10) {{ edges {{ node {{ {} }} }} }} }}",
                wrapped("Call", "id status transcript summary")
            ),
        ),
        // A repeated response key.
        (
            "{ calls(first: 10) { edges { node { id status id } } } }".to_owned(),
            "{ calls(first: 10) { edges { node { ... on Call { id status id } } } } }".to_owned(),
        ),
    ];
    for (quick, derived) in &cases {
        let a = raw(&app, &t.key, quick, json!({})).await;
        let b = raw(&app, &t.key, derived, json!({})).await;
        assert!(!a.contains("\"errors\""), "{quick}: {a}");
        assert_eq!(a, b, "{quick}");
    }

    // Single rows by id.
    for id in &customers {
        let a = raw(
            &app,
            &t.key,
            &format!("query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
        let b = raw(
            &app,
            &t.key,
            &format!(
                "query($id: ID!) {{ customer(id: $id) {{ {} }} }}",
                wrapped("Customer", CUSTOMER_FIELDS)
            ),
            json!({ "id": id }),
        )
        .await;
        assert!(a.contains(id.as_str()), "{a}");
        assert_eq!(a, b);
    }
    let call = app.insert_call(&t.id, Some(&customers[0]), None).await;
    let a = raw(
        &app,
        &t.key,
        &format!("query($id: ID!) {{ call(id: $id) {{ {CALL_FIELDS} }} }}"),
        json!({ "id": call }),
    )
    .await;
    let b = raw(
        &app,
        &t.key,
        &format!(
            "query($id: ID!) {{ call(id: $id) {{ {} }} }}",
            wrapped("Call", CALL_FIELDS)
        ),
        json!({ "id": call }),
    )
    .await;
    assert!(a.contains(call.as_str()), "{a}");
    assert_eq!(a, b);

    // Another tenant's row stays invisible on the quick path too.
    let other = app.create_tenant("Other", "US").await;
    let body = raw(
        &app,
        &other.key,
        "query($id: ID!) { customer(id: $id) { id phoneNumber } }",
        json!({ "id": customers[0] }),
    )
    .await;
    assert_eq!(body, r#"{"data":{"customer":null}}"#);
}
on_both!(
    rows_built_at_once_answer_as_the_derived_resolvers,
    same_answers
);
