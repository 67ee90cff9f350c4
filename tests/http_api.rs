//! The `http` destination (issue 32), built in steps: so far the stand-in's generic endpoint,
//! where a templated mapping can be tried locally.

use crate::common::stand_in;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_keeps_any_json_sent_to_http_and_refuses_what_is_not_json() {
    let si = stand_in().await;
    let client = reqwest::Client::new();
    let base = si.url();
    let sent = client
        .post(format!("{base}/http/v2/people/bulk"))
        .json(&serde_json::json!({"people": [{"external_id": "u-1"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), 200);
    let put = client
        .put(format!("{base}/http/v2/people/u-2"))
        .body("{\"plan\": \"pro\"}")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let deleted = client
        .delete(format!("{base}/http/v2/people/team%2Fops-7"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let bad = client
        .post(format!("{base}/http/v2/people/bulk"))
        .body("{\"people\": [")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    let why: serde_json::Value = bad.json().await.expect("json error");
    assert!(why["error"].as_str().unwrap_or("").starts_with("the body is not JSON"), "{why}");

    let kept = si.http_received();
    let seen: Vec<(&str, &str)> = kept.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("POST", "v2/people/bulk"),
            ("PUT", "v2/people/u-2"),
            ("DELETE", "v2/people/team%2Fops-7")
        ],
        "kept in order, the path as it came"
    );
    assert_eq!(kept[0].body, serde_json::json!({"people": [{"external_id": "u-1"}]}));
    assert_eq!(kept[2].body, serde_json::Value::Null);
    let listed: serde_json::Value = client
        .get(format!("{base}/records/http"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
}
