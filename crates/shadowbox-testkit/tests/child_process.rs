//! The child-process guard with ordinary shell commands.

use std::process::Command;
use std::time::Duration;

use shadowbox_testkit::{ChildProcess, PATIENCE, eventually, run_bounded};

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

#[tokio::test]
async fn output_is_captured_and_sigterm_is_waited_for() {
    let mut child = ChildProcess::spawn(
        "a shell",
        &mut sh("trap 'echo bye; exit 3' TERM; echo out; echo err >&2; \
                 while :; do sleep 0.05; done"),
    );
    eventually(PATIENCE, "it wrote both streams", || {
        std::future::ready(child.stdout() == "out\n" && child.stderr() == "err\n")
    })
    .await;
    assert_eq!(child.try_wait(), None, "still running");
    let status = child.terminate().await;
    assert_eq!(status.code(), Some(3));
    assert_eq!(child.stdout(), "out\nbye\n");
}

#[test]
fn run_bounded_answers_the_status_and_both_streams() {
    let output = run_bounded(&mut sh("echo hi; echo oops >&2; exit 4"), PATIENCE);
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(output.stdout, b"hi\n");
    assert_eq!(output.stderr, b"oops\n");
}

#[test]
#[should_panic(expected = "not within")]
fn run_bounded_fails_a_command_that_takes_too_long() {
    run_bounded(&mut sh("sleep 30"), Duration::from_millis(200));
}

#[test]
fn dropping_the_guard_kills_the_process() {
    let child = ChildProcess::spawn("sleep", Command::new("sleep").arg("30"));
    let proc_dir = format!("/proc/{}", child.id());
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(child);
    // Killed and reaped: no process, not even a zombie, is left.
    assert!(!std::path::Path::new(&proc_dir).exists());
}
