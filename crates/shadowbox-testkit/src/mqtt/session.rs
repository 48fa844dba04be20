//! The test client's bookkeeping, the same whatever the protocol version:
//! which publish each PUBACK answers, which subscription each SUBACK
//! answers, which filters to subscribe to again after a reconnect, and
//! every message received.
//!
//! A protocol's event loop (see `v311.rs`) turns its events into
//! [`Happened`] and hands them to [`Session::handle`]; the client registers
//! a waiter with [`Session::expect_puback`] or [`Session::expect_suback`]
//! right before it queues the request. Packet ids pair a PUBACK with its
//! publish: the event loop reports the id each publish went out with
//! (`PublishSent`, in the order the publishes were queued, so the oldest
//! waiter without an id is the one a new id belongs to), then the PUBACK
//! carrying that id. SUBACKs answer subscriptions in the order they were
//! sent.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use tokio::sync::oneshot;

/// One MQTT message as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether it came as a retained message (sent on subscribing).
    pub retain: bool,
    /// When it arrived.
    pub at: Instant,
}

/// The broker's answer to a request: accepted, or refused with a reason
/// (a SUBACK failure; under MQTT 5 also a PUBACK reason code).
pub(super) type Answer = Result<(), String>;

/// What the event loop saw.
#[derive(Debug)]
pub(super) enum Happened {
    /// The broker accepted the connection.
    Connected,
    /// The connection broke. The session is clean, so the requests not yet
    /// acknowledged are gone: nothing is sent again after a reconnect.
    ConnectionLost,
    /// A publish went out with this packet id.
    PublishSent(u16),
    /// The PUBACK of the publish with this packet id.
    PublishAcked(u16, Answer),
    /// The SUBACK of the oldest subscription not yet answered.
    SubscribeAcked(Answer),
    /// A message arrived.
    Received(Message),
}

/// Everything the client and its event loop share.
#[derive(Debug, Default)]
pub(super) struct Session {
    /// Every message received, in arrival order.
    pub messages: Vec<Message>,
    /// The filters subscribed to, to subscribe again after a reconnect.
    pub filters: Vec<String>,
    connected: bool,
    connections: u32,
    on_connect: Vec<oneshot::Sender<()>>,
    /// PUBACK waiters of publishes queued but not yet sent, oldest first.
    unsent: VecDeque<oneshot::Sender<Answer>>,
    /// PUBACK waiters of publishes sent, by packet id.
    sent: HashMap<u16, oneshot::Sender<Answer>>,
    /// SUBACK waiters, oldest first.
    subscriptions: VecDeque<oneshot::Sender<Answer>>,
}

impl Session {
    /// A waiter for the connection to be up.
    pub fn expect_connected(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if self.connected {
            let _ = tx.send(());
        } else {
            self.on_connect.push(tx);
        }
        rx
    }

    /// A waiter for the PUBACK of the next publish queued.
    pub fn expect_puback(&mut self) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.unsent.push_back(tx);
        rx
    }

    /// Drops the waiter [`Session::expect_puback`] just registered, whose
    /// publish could not be queued.
    pub fn forget_last_puback(&mut self) {
        self.unsent.pop_back();
    }

    /// A waiter for the SUBACK of the next subscription queued.
    pub fn expect_suback(&mut self) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.subscriptions.push_back(tx);
        rx
    }

    /// Drops the waiter [`Session::expect_suback`] just registered, whose
    /// subscription could not be queued.
    pub fn forget_last_suback(&mut self) {
        self.subscriptions.pop_back();
    }

    /// Records what happened. Answers whether this is a reconnect, after
    /// which the filters must be subscribed to again (a clean session
    /// starts without subscriptions).
    pub fn handle(&mut self, happened: Happened) -> bool {
        match happened {
            Happened::Connected => {
                self.connected = true;
                self.connections += 1;
                for waiter in self.on_connect.drain(..) {
                    let _ = waiter.send(());
                }
                return self.connections > 1;
            }
            Happened::ConnectionLost => {
                if self.connected {
                    self.connected = false;
                    // Dropping the waiters tells their callers.
                    self.unsent.clear();
                    self.sent.clear();
                    self.subscriptions.clear();
                }
            }
            Happened::PublishSent(id) => {
                // An id still waiting is the same publish sent again.
                if !self.sent.contains_key(&id)
                    && let Some(waiter) = self.unsent.pop_front()
                {
                    self.sent.insert(id, waiter);
                }
            }
            Happened::PublishAcked(id, answer) => {
                if let Some(waiter) = self.sent.remove(&id) {
                    let _ = waiter.send(answer);
                }
            }
            Happened::SubscribeAcked(answer) => {
                if let Some(waiter) = self.subscriptions.pop_front() {
                    let _ = waiter.send(answer);
                }
            }
            Happened::Received(message) => self.messages.push(message),
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(rx: &mut oneshot::Receiver<Answer>) -> Option<Answer> {
        rx.try_recv().ok()
    }

    #[test]
    fn each_puback_answers_the_publish_sent_with_its_packet_id() {
        let mut session = Session::default();
        session.handle(Happened::Connected);
        let mut first = session.expect_puback();
        let mut second = session.expect_puback();
        session.handle(Happened::PublishSent(7));
        session.handle(Happened::PublishSent(8));

        session.handle(Happened::PublishAcked(8, Ok(())));
        assert_eq!(answered(&mut first), None);
        assert_eq!(answered(&mut second), Some(Ok(())));
        // Sent again under the same id: still the first publish.
        session.handle(Happened::PublishSent(7));
        session.handle(Happened::PublishAcked(7, Err("refused".into())));
        assert_eq!(answered(&mut first), Some(Err("refused".into())));
    }

    #[test]
    fn subacks_answer_subscriptions_in_order() {
        let mut session = Session::default();
        let mut first = session.expect_suback();
        let mut second = session.expect_suback();
        session.handle(Happened::SubscribeAcked(Err("not authorized".into())));
        session.handle(Happened::SubscribeAcked(Ok(())));
        assert_eq!(answered(&mut first), Some(Err("not authorized".into())));
        assert_eq!(answered(&mut second), Some(Ok(())));
    }

    #[test]
    fn a_lost_connection_fails_what_was_not_acknowledged() {
        let mut session = Session::default();
        assert!(!session.handle(Happened::Connected), "the first connection");
        let mut sent = session.expect_puback();
        session.handle(Happened::PublishSent(1));
        let mut unsent = session.expect_puback();
        let mut subscription = session.expect_suback();
        session.handle(Happened::ConnectionLost);
        for waiter in [&mut sent, &mut unsent, &mut subscription] {
            assert!(matches!(
                waiter.try_recv(),
                Err(oneshot::error::TryRecvError::Closed)
            ));
        }
        assert!(session.handle(Happened::Connected), "a reconnect");
        let mut after = session.expect_puback();
        session.handle(Happened::PublishSent(1));
        session.handle(Happened::PublishAcked(1, Ok(())));
        assert_eq!(answered(&mut after), Some(Ok(())));
    }

    #[test]
    fn a_request_that_could_not_be_queued_is_forgotten() {
        let mut session = Session::default();
        let mut kept = session.expect_puback();
        let _refused = session.expect_puback();
        session.forget_last_puback();
        session.handle(Happened::PublishSent(3));
        session.handle(Happened::PublishAcked(3, Ok(())));
        assert_eq!(answered(&mut kept), Some(Ok(())));
    }
}
