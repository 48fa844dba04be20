//! The API end to end: the real router on a real socket, a fresh database
//! per test, and a real HTTP client.

mod auth;
mod convergence;
mod desired;
mod devices;
mod errors;
mod events;
mod fuzz;
mod helpers;
mod history;
mod idempotency;
mod openapi;
mod operations;
mod outbox;
mod rollouts;
mod tags;
