//! A throwaway Postgres cluster of a test's own (`initdb` + `pg_ctl` from Debian's
//! `postgresql` package, on a free port), so a test can restart it, or run it with TLS, without
//! disturbing the others. Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    settings: Vec<String>,
}

/// How to start a [`PrivatePostgres`].
#[derive(Default)]
pub struct Options {
    /// Serve TLS with a certificate for `localhost` and 127.0.0.1 signed by a test authority
    /// ([`PrivatePostgres::certificate`]), and accept TCP connections over TLS only.
    pub tls_only: bool,
}

impl PrivatePostgres {
    /// A plain cluster, or None when the server binaries are missing.
    pub fn start() -> Option<Self> {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_ctl").exists())?;
        let dir = std::env::temp_dir().join(format!("pbg-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).ok()?;
        let mut settings = Vec::new();
        if options.tls_only {
            // A test authority, and the server's certificate signed by it.
            let cert = dir.join("server.crt");
            let key = dir.join("server.key");
            std::fs::write(
                dir.join("server.ext"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
            )
            .ok()?;
            let openssl = |args: &[&str]| {
                Command::new("openssl")
                    .args(args)
                    .current_dir(&dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let made = openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=pbg test authority",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ]) && openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]) && openssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ]);
            if !made {
                return None;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).ok()?;
            settings.push("-c ssl=on".to_owned());
            settings.push(format!("-c ssl_cert_file={}", cert.display()));
            settings.push(format!("-c ssl_key_file={}", key.display()));
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let pg = Self {
            bin,
            dir,
            port,
            as_postgres: root,
            settings,
        };
        let data = pg.dir.join("data");
        if root {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .ok()?;
        }
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str()?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )
        .then_some(())?;
        if options.tls_only {
            // TCP only over TLS: a plain connection is refused by the server itself.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .ok()?;
        }
        pg.pg_ctl("start").then_some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `pg_ctl start` or `stop` (fast), waiting for it.
    pub fn pg_ctl(&self, action: &str) -> bool {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        for s in &self.settings {
            opts.push(' ');
            opts.push_str(s);
        }
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &opts,
        ];
        if action == "stop" {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.run("pg_ctl", &args)
    }

    /// The URL of database `pbg` (made by `gateway-api migrate`), over plain TCP.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/pbg", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The certificate of the authority that signed a `tls_only` cluster's certificate (PEM),
    /// to trust as `sslrootcert`.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.pg_ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
