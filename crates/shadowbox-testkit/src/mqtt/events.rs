//! The test client's event loop: polls a `shadowbox_mqtt` connection
//! (MQTT 5 or 3.1.1, whose events it already normalizes) and tells the
//! [`Session`] what happened, in the terms of [`Happened`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use shadowbox_mqtt::{Client, Event, EventLoop, RequestError, Verdict};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::session::{Answer, Happened, Message, Session};

/// How long to wait before polling again after a connection error.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Queues a QoS 1 SUBSCRIBE to `filter` without waiting for room in the
/// request queue, with a waiter in `session` for its SUBACK.
pub(super) fn try_subscribe(
    client: &Client,
    session: &mut Session,
    filter: &str,
) -> Result<oneshot::Receiver<Answer>, RequestError> {
    let answer = session.expect_suback();
    match client.try_subscribe(filter) {
        Ok(()) => Ok(answer),
        Err(e) => {
            session.forget_last_suback();
            Err(e)
        }
    }
}

/// Runs `eventloop` until the task is aborted.
pub(super) fn spawn(
    client: Client,
    mut eventloop: EventLoop,
    session: Arc<Mutex<Session>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let happened = match eventloop.poll().await {
                Ok(Event::Connected(_)) => Happened::Connected,
                Ok(Event::PublishSent(id)) => Happened::PublishSent(id),
                Ok(Event::PubAck { pkid, reason }) => {
                    let answer = match reason.verdict() {
                        Verdict::Accepted => Ok(()),
                        Verdict::Refused | Verdict::Transient => {
                            Err(format!("the broker refused it: {reason}"))
                        }
                    };
                    Happened::PublishAcked(pkid, answer)
                }
                Ok(Event::Subscribed(answers)) => Happened::SubscribeAcked(
                    answers
                        .into_iter()
                        .collect::<Result<(), String>>()
                        .map_err(|e| format!("the broker refused the subscription: {e}")),
                ),
                Ok(Event::Message(m)) => Happened::Received(Message {
                    payload: m.payload().to_vec(),
                    topic: m.topic,
                    retain: m.retain,
                    at: Instant::now(),
                }),
                Ok(_) => continue,
                Err(_) => Happened::ConnectionLost,
            };
            let lost = matches!(happened, Happened::ConnectionLost);
            {
                let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
                if session.handle(happened) {
                    // Nobody waits for these SUBACKs. The request queue
                    // was emptied when the connection broke, so there is
                    // room; were there none, the filter would stay
                    // unsubscribed and the test would see messages missing,
                    // never wrong ones.
                    for filter in session.filters.clone() {
                        let _ = try_subscribe(&client, &mut session, &filter);
                    }
                }
            }
            if lost {
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    })
}
