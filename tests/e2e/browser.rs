//! Headless Chromium driven through chromedriver (fantoccini), for tests of the pages people use.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const INSTALL: &str =
    "headless Chromium is needed for the browser tests: `apt-get install -y chromium chromium-driver`";

/// chromedriver in its own process group (killed as a group, so no Chromium outlives a failed test)
/// and a WebDriver session on a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: std::path::PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        let port = crate::support::free_port();
        let profile =
            std::env::temp_dir().join(format!("benchop-chromium-{}", uuid::Uuid::new_v4().simple()));
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}). {INSTALL}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = crate::support::client();
        let start = Instant::now();
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not come up. {INSTALL}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display()),
            ]
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".to_owned(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}. {INSTALL}"));
        Self {
            client,
            driver,
            profile,
        }
    }

    /// Wait for a CSS selector to appear (bounded) and return the element.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("`{css}` did not appear: {e}"))
    }

    /// Every resource the page loaded, as URLs (to prove nothing came from outside the machine).
    pub async fn loaded_urls(&self) -> Vec<String> {
        let v: Value = self
            .client
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
                vec![],
            )
            .await
            .expect("run script");
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Kill the whole group (chromedriver and every Chromium it started) with killpg(2) on the
        // group the driver leads. Never shell out to `kill -<pgid>`: a mis-parsed negative pid there
        // means "every process".
        if let Ok(pgid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
