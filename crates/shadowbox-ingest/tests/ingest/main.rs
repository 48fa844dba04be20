//! The ingester against a real broker and database, in one test binary
//! (one build and link for all of them; every shared helper is used).

mod common;
mod convergence;
mod messages;
mod resilience;
mod sessions;
