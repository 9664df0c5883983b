//! A real HTTP receiver for webhooks, started inside the test: it records every request
//! (headers and body) and answers as told (accept, fail with 500, or stop answering).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    Accept,
    Fail,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("JSON body ({e}): {}", self.body))
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<u64>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *receiver.attempts.lock().unwrap() += 1;
    match *receiver.answer.lock().unwrap() {
        Answer::Accept => {
            receiver.received.lock().unwrap().push(Received {
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            StatusCode::NO_CONTENT
        }
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl Receiver {
    /// Listens on a free loopback port, at `/hook`, on the test's runtime.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            addr: listener.local_addr().unwrap(),
            answer: Arc::new(Mutex::new(Answer::Accept)),
            received: Arc::new(Mutex::new(Vec::new())),
            attempts: Arc::new(Mutex::new(0)),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> u64 {
        *self.attempts.lock().unwrap()
    }

    /// Waits until `ready` holds for what was received, or fails after `patience`.
    pub async fn wait_for(
        &self,
        patience: Duration,
        what: &str,
        ready: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + patience;
        loop {
            let received = self.received();
            if ready(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never got {what}; it got {} requests: {:#?}",
                received.len(),
                received.iter().map(|r| &r.body).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
