//! A fresh, migrated database per test on the shared PostgreSQL.

use sqlx::{Connection, PgConnection, PgPool};

/// The server the test databases are created on; override with
/// `SHADOWBOX_TEST_ADMIN_URL`.
fn admin_url() -> String {
    std::env::var("SHADOWBOX_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test, migrated, dropped on drop.
pub struct TestDb {
    /// A pool on the database.
    pub pool: PgPool,
    /// Its URL, for processes under test.
    pub url: String,
    name: String,
}

impl TestDb {
    /// Creates and migrates a new database.
    pub async fn new() -> Self {
        let name = format!("sbtest_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_url();
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("SHADOWBOX_TEST_ADMIN_URL must name a database"),
        };
        let pool = shadowbox_db::connect(&url, 20)
            .await
            .expect("create test database");
        shadowbox_db::migrate(&pool)
            .await
            .expect("migrate test database");
        Self { pool, url, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        // Drop may run inside a runtime, which must not block on itself.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .map_err(std::io::Error::other)?;
                shadowbox_db::drop_database(&mut conn, &name)
                    .await
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
