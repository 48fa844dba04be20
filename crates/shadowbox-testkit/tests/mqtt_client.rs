//! The MQTT test client against a private Mosquitto.

use shadowbox_testkit::mqtt::{Client, retained};
use shadowbox_testkit::{Mosquitto, PATIENCE, eventually};

fn seen(client: &Client) -> Vec<(String, String, bool)> {
    client
        .messages()
        .into_iter()
        .map(|m| (m.topic, String::from_utf8(m.payload).unwrap(), m.retain))
        .collect()
}

#[tokio::test]
async fn retained_and_live_messages_are_recorded_with_their_flag() {
    let broker = Mosquitto::start();
    let publisher = Client::connect(&broker.url(), "publisher").await;
    publisher.publish_retained("t/kept", "old").await;
    let observer = Client::connect(&broker.url(), "observer").await;
    assert_ne!(observer.id(), publisher.id());
    observer.subscribe("t/#").await;
    publisher.publish("t/live", "new").await;
    observer
        .wait_for("both messages", |messages| messages.len() == 2)
        .await;
    assert_eq!(
        seen(&observer),
        [
            ("t/kept".into(), "old".into(), true),
            ("t/live".into(), "new".into(), false)
        ]
    );
    let kept = retained(&broker.url(), "t/#").await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept["t/kept"], b"old");
}

#[tokio::test]
async fn pipelined_publishes_are_all_acknowledged_and_kept_in_order() {
    let broker = Mosquitto::start();
    let observer = Client::connect(&broker.url(), "observer").await;
    observer.subscribe("t/+").await;
    let publisher = Client::connect(&broker.url(), "publisher").await;
    let messages: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| (format!("t/{}", i % 7), i.to_string().into_bytes()))
        .collect();
    publisher.publish_all(messages.clone()).await;
    observer
        .wait_for("every message", |seen| seen.len() == messages.len())
        .await;
    let received: Vec<(String, Vec<u8>)> = observer
        .messages()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    assert_eq!(received, messages);
}

#[tokio::test]
async fn next_message_returns_each_message_once_in_arrival_order() {
    let broker = Mosquitto::start();
    let mut observer = Client::connect(&broker.url(), "observer").await;
    observer.subscribe("t/#").await;
    let publisher = Client::connect(&broker.url(), "publisher").await;
    publisher.publish("t/1", "a").await;
    publisher.publish("t/2", "b").await;
    assert_eq!(observer.next_message().await.payload, b"a");
    assert_eq!(observer.next_message().await.payload, b"b");
    publisher.publish("t/3", "c").await;
    assert_eq!(observer.next_message().await.topic, "t/3");
}

#[tokio::test]
async fn a_subscriber_subscribes_again_after_the_broker_restarted() {
    let mut broker = Mosquitto::start();
    let observer = Client::connect(&broker.url(), "observer").await;
    observer.subscribe("t/#").await;
    // Without persistence the restarted broker knows no subscription.
    broker.restart();
    let publisher = Client::connect(&broker.url(), "publisher").await;
    eventually(PATIENCE, "a message after the restart", || async {
        publisher.publish("t/after", "x").await;
        observer.messages().iter().any(|m| m.topic == "t/after")
    })
    .await;
}
