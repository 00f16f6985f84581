//! Relay: the `Node` interface with global ids, `node(id:)` / `nodes(ids:)` under each type's
//! tenant rules, `totalCount` on connections, and the lists that grow (`users`,
//! `paymentMethods`) as connections.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

const NODE: &str = r#"query($id: ID!) { node(id: $id) { __typename id
  ... on Subscription { status }
  ... on Order { number }
  ... on Offer { name }
  ... on Partner { legalName }
} }"#;

const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";

#[tokio::test(flavor = "multi_thread")]
async fn every_entity_is_a_node_refetchable_by_its_global_id_within_its_tenant() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "relay").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let invoice_id = order["invoice"]["id"].as_str().unwrap().to_owned();
    let benefit_id = benefit(&sys, &ga, "PRODUCT_SUPPORT").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = sys.gql_ok(Some(&ga), ME, json!({})).await;
    let user_id = me["me"]["user"]["id"].as_str().unwrap().to_owned();

    // Each id refetches its object, whatever its type.
    for (id, typename) in [
        (pid.as_str(), "Partner"),
        (user_id.as_str(), "User"),
        (sub_id.as_str(), "Subscription"),
        (order_id.as_str(), "Order"),
        (invoice_id.as_str(), "Invoice"),
        (benefit_id.as_str(), "Benefit"),
        (card.as_str(), "PaymentMethod"),
        ("ACTION_PACK", "Offer"),
    ] {
        let d = sys.gql_ok(Some(&ga), NODE, json!({"id": id})).await;
        assert_eq!(d["node"]["__typename"], typename, "{id}: {d}");
        assert_eq!(d["node"]["id"], id, "{d}");
    }
    let d = sys.gql_ok(Some(&ga), NODE, json!({"id": sub_id})).await;
    assert_eq!(d["node"]["status"], "ACTIVE");
    let d = sys.gql_ok(Some(&ga), NODE, json!({"id": order_id})).await;
    assert_eq!(d["node"]["number"], order["number"]);

    // Another partner's ids are null with NOT_FOUND, as if they did not exist.
    let (_, other) = authorized_partner(&sys, "relay-other").await;
    for id in [
        &pid,
        &user_id,
        &sub_id,
        &order_id,
        &invoice_id,
        &benefit_id,
        &card,
    ] {
        let r = sys.gql(Some(&other), NODE, json!({"id": id})).await;
        assert!(r["data"]["node"].is_null(), "{id}: {r}");
        assert_eq!(error_code(&r), Some("NOT_FOUND"), "{id}: {r}");
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = sys.gql(Some(&ga), NODE, json!({"id": unknown})).await;
    assert!(r["data"]["node"].is_null());
    assert_eq!(error_code(&r), Some("NOT_FOUND"), "{r}");

    // nodes: in order, with each failure null and its error at its index.
    let r = sys
        .gql(
            Some(&other),
            NODES,
            json!({"ids": ["ACTION_PACK", order_id, "NO_SUCH_OFFER"]}),
        )
        .await;
    assert_eq!(r["data"]["nodes"][0]["__typename"], "Offer", "{r}");
    assert!(
        r["data"]["nodes"][1].is_null() && r["data"]["nodes"][2].is_null(),
        "{r}"
    );
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{r}");
    assert_eq!(errors[0]["path"], json!(["nodes", 1]), "{r}");
    assert_eq!(errors[1]["path"], json!(["nodes", 2]), "{r}");
    assert!(errors
        .iter()
        .all(|e| e["extensions"]["code"] == "NOT_FOUND"));
    let many: Vec<String> = (0..101).map(|_| "ACTION_PACK".to_owned()).collect();
    let r = sys.gql(Some(&ga), NODES, json!({"ids": many})).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");

    // Operators see every partner's objects.
    let op = operator_token(&sys).await;
    let d = sys.gql_ok(Some(&op), NODE, json!({"id": order_id})).await;
    assert_eq!(d["node"]["__typename"], "Order");
    let d = sys.gql_ok(Some(&op), NODE, json!({"id": pid})).await;
    assert_eq!(d["node"]["legalName"], "relay Corp");

    // Without a token: 401 like any other field.
    let r = sys.gql(None, NODE, json!({"id": order_id})).await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_carry_total_count_and_users_and_cards_page() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "pages").await;
    let first_card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let second_card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    buy(&sys, &ga, "ACTION_PACK", &first_card).await;

    // totalCount counts the whole list, whatever the page size.
    let d = sys
        .gql_ok(
            Some(&ga),
            "{ benefits(first: 1) { totalCount edges { node { id } } pageInfo { hasNextPage } }
               all: benefits(first: 100) { edges { node { id } } }
               orders(first: 1) { totalCount } invoices { totalCount }
               subscriptions { totalCount } auditLog(first: 1) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    let all = d["all"]["edges"].as_array().unwrap().len() as i64;
    assert!(all > 1, "{d}");
    assert_eq!(d["benefits"]["totalCount"], all, "{d}");
    assert_eq!(d["benefits"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(d["benefits"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(d["orders"]["totalCount"], 1);
    assert_eq!(d["invoices"]["totalCount"], 1);
    assert_eq!(d["subscriptions"]["totalCount"], 1);
    assert!(d["auditLog"]["totalCount"].as_i64().unwrap() > 1, "{d}");
    // Through a fragment too.
    let d = sys
        .gql_ok(
            Some(&ga),
            "query { orders { ...Count } } fragment Count on OrderConnection { totalCount }",
            json!({}),
        )
        .await;
    assert_eq!(d["orders"]["totalCount"], 1);

    // Cards: a connection, newest first, paged by cursor.
    const CARDS: &str = "query($after: String) { paymentMethods(first: 1, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } nodes { id } } }";
    let page = sys.gql_ok(Some(&ga), CARDS, json!({})).await;
    assert_eq!(page["paymentMethods"]["totalCount"], 2, "{page}");
    assert_eq!(
        page["paymentMethods"]["nodes"][0]["id"],
        second_card.as_str()
    );
    assert_eq!(page["paymentMethods"]["pageInfo"]["hasNextPage"], true);
    let cursor = page["paymentMethods"]["pageInfo"]["endCursor"].clone();
    let page = sys.gql_ok(Some(&ga), CARDS, json!({"after": cursor})).await;
    assert_eq!(
        page["paymentMethods"]["nodes"][0]["id"],
        first_card.as_str()
    );
    assert_eq!(page["paymentMethods"]["pageInfo"]["hasNextPage"], false);

    // Users: a connection too.
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "m@pages-corp.example", "roles": []}),
    )
    .await;
    let users: Value = sys
        .gql_ok(
            Some(&ga),
            "{ users(first: 1) { totalCount nodes { email } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(users["users"]["totalCount"], 2, "{users}");
    assert_eq!(users["users"]["nodes"][0]["email"], "m@pages-corp.example");
    assert_eq!(users["users"]["pageInfo"]["hasNextPage"], true);

    // Operators: partners with totalCount.
    let op = operator_token(&sys).await;
    let d = sys
        .gql_ok(
            Some(&op),
            "{ partners(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(d["partners"]["totalCount"], 1, "{d} ({pid})");
}
