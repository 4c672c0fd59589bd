//! `trustsync run` as a child process: started with the workspace config, its address
//! read from its first line of stdout, its logs in `run.log`, stopped on drop.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::{command, http, wait_for, GraphServer, Moto, Workspace, CLIENT_SECRET};

/// A running `trustsync run`.
pub struct Daemon {
    pub child: Child,
    pub base: String,
}

impl Daemon {
    pub fn start(moto: &Moto, graph: &GraphServer, ws: &Workspace) -> Daemon {
        Daemon::spawn(&moto.endpoint, graph.env(CLIENT_SECRET), ws)
    }

    /// `trustsync run` with AWS at `endpoint` and this extra environment; returns once it
    /// prints its address.
    pub fn spawn(endpoint: &str, env: Vec<(String, String)>, ws: &Workspace) -> Daemon {
        Daemon::spawn_at(endpoint, env, ws, "127.0.0.1:0")
    }

    /// [`Daemon::spawn`], listening on `listen`.
    pub fn spawn_at(
        endpoint: &str,
        env: Vec<(String, String)>,
        ws: &Workspace,
        listen: &str,
    ) -> Daemon {
        let mut cmd = command(ws.path(), endpoint);
        cmd.args(["--config", "trustsync.yaml", "run", "--listen", listen])
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(ws.path().join("run.log")).unwrap());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // The rest of stdout (the audit mirror) goes to run.out.
        let mut copy = std::fs::File::create(ws.path().join("run.out")).unwrap();
        std::thread::spawn(move || std::io::copy(&mut out, &mut copy));
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            base.starts_with("http://"),
            "daemon did not start: {line}\n{}",
            ws.read("run.log")
        );
        Daemon { child, base }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http("GET", &format!("{}{path}", self.base), None)
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").1).unwrap()
    }

    pub fn wait_ready(&self) {
        wait_for(Duration::from_secs(60), "readiness", || {
            self.get("/readyz").0 == 200
        });
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
