//! The system under test: the release `gateway-api` and `gateway-worker` binaries started
//! as their own processes, and what /proc says about them and the machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The binaries beside this one (target/release).
fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no folder"))?
        .join(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found: build with `cargo build --release --bins` (scripts/bench does)",
        path.display()
    );
    Ok(path)
}

pub struct Process {
    pub child: Child,
    pub pid: u32,
}

/// The binary `name` with only PATH and `env` in its environment.
fn command(name: &str, args: &[&str], env: &BTreeMap<String, String>) -> anyhow::Result<Command> {
    let mut cmd = Command::new(bin(name)?);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env);
    Ok(cmd)
}

pub fn spawn(name: &str, args: &[&str], env: &BTreeMap<String, String>) -> anyhow::Result<Process> {
    let log = std::env::var("BENCH_SHOW_LOGS").is_ok();
    let child = command(name, args, env)?
        .stdout(Stdio::null())
        .stderr(if log { Stdio::inherit() } else { Stdio::null() })
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("{name} exited at once"))?;
    Ok(Process { child, pid })
}

pub async fn run_to_end(
    name: &str,
    args: &[&str],
    env: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let status = command(name, args, env)?.status().await?;
    anyhow::ensure!(status.success(), "{name} {args:?} failed: {status}");
    Ok(())
}

pub async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the api did not answer /healthz within 30 s")
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak resident set size since the process started (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_kb(pid, "VmHWM:").map(|kb| kb as f64 / 1024.0)
}

/// Current resident set size, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kb(pid, "VmRSS:").map(|kb| kb as f64 / 1024.0)
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy, stolen and total jiffies of the whole machine (from /proc/stat). Busy includes the
/// stolen: time the host ran something else while this machine had work.
pub fn machine_jiffies() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, cpu.get(7).copied().unwrap_or(0), total)
}

/// CPU use over a stretch of time: the machine's (in cores busy) and per process.
pub struct CpuWindow {
    machine: (u64, u64, u64),
    procs: Vec<(u32, f64)>,
    started: std::time::Instant,
}

/// What [`CpuWindow::finish`] measured.
pub struct CpuUse {
    /// Busy, % of all cores (stolen time included).
    pub busy_pct: f64,
    /// Stolen by the host, % of all cores.
    pub steal_pct: f64,
    /// Cores this machine's processes kept busy on average (stolen time left out).
    pub cores: f64,
    /// Length of the window.
    pub secs: f64,
    /// Cores busy per watched process.
    pub procs: Vec<f64>,
}

impl CpuWindow {
    pub fn start(pids: &[u32]) -> Self {
        Self {
            machine: machine_jiffies(),
            procs: pids.iter().map(|p| (*p, cpu_secs(*p))).collect(),
            started: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) -> CpuUse {
        let (busy, steal, total) = machine_jiffies();
        let (busy, steal) = (busy - self.machine.0, steal - self.machine.1);
        let total = (total - self.machine.2).max(1) as f64;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let all_cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        CpuUse {
            busy_pct: 100.0 * busy as f64 / total,
            steal_pct: 100.0 * steal as f64 / total,
            cores: all_cores * busy.saturating_sub(steal) as f64 / total,
            secs,
            procs: self
                .procs
                .iter()
                .map(|(pid, before)| (cpu_secs(*pid) - before) / secs)
                .collect(),
        }
    }
}

/// The machine, for the report.
pub fn describe_machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    vec![
        ("CPU".into(), format!("{cores} × {model}")),
        ("Memory".into(), mem),
        ("Kernel".into(), format!("Linux {kernel}")),
        ("Rust".into(), rustc),
    ]
}
