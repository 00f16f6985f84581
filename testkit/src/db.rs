//! One database per test, cloned from a template that holds the migrated schema. The template
//! name carries a hash of the migrations, so changing a migration makes a new template.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

use crate::admin_database_url;

pub struct TestDb {
    pub name: String,
    pub url: String,
}

/// Serializes template creation and cloning across parallel test processes.
const TEMPLATE_LOCK: i64 = 0x7062_672d_746d_706c;

fn migrations_hash() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    let mut h = Sha256::new();
    for path in entries {
        h.update(path.to_string_lossy().as_bytes());
        h.update(std::fs::read(&path).expect("read migration"));
    }
    hex::encode(h.finalize())[..12].to_owned()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("migrations dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub(crate) fn url_for(admin: &str, db: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{db}")
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

impl TestDb {
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = admin_database_url();
        let template = format!("pbg_template_{}", migrations_hash());
        let name = format!("pbg_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url).await?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
            .execute(&mut admin)
            .await?;
        let result = async {
            let exists: Exists = diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists",
            )
            .bind::<diesel::sql_types::Text, _>(&template)
            .get_result(&mut admin)
            .await?;
            if !exists.exists {
                let building = format!("{template}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}"))
                    .execute(&mut admin)
                    .await?;
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .await?;
                gateway_domain::db::migrate(&url_for(&admin_url, &building)).await?;
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
                    .execute(&mut admin)
                    .await?;
            }
            diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut admin)
                .await?;
            anyhow::Ok(())
        }
        .await;
        diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
            .execute(&mut admin)
            .await?;
        result?;
        Ok(Self {
            url: url_for(&admin_url, &name),
            name,
        })
    }

    pub async fn connect(&self) -> anyhow::Result<AsyncPgConnection> {
        Ok(AsyncPgConnection::establish(&self.url).await?)
    }

    /// Drops the database (a test that uses it without a [`crate::TestSystem`] cleans up).
    pub async fn remove(self) -> anyhow::Result<()> {
        let mut admin = AsyncPgConnection::establish(&admin_database_url()).await?;
        diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}
