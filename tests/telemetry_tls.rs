//! MQTT over TLS against real mosquitto in the lab, with a test CA made by
//! openssl here: a good CA with a client certificate and a password works; a
//! wrong CA and an expired broker certificate give a clear status, and the
//! daemon neither crashes nor spins.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::lab::Lab;

const PASSWORD: &str = "tls-test-pw-7f3a";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it signs for `cn` valid `days` (negative: expired).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=edgereach test {name}"),
        ],
    );
}

fn signed(dir: &Path, ca: &str, name: &str, days: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            days,
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// mosquitto with TLS listeners in the lab's server namespace, killed on drop.
struct TlsBroker(Child);

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(lab: &Lab, dir: &Path) -> TlsBroker {
    let ip = lab.get("MQTT_IP");
    let p = |f: &str| dir.join(f).display().to_string();
    let out = Command::new("mosquitto_passwd")
        .args(["-c", "-b", &p("passwd"), "gw-user", PASSWORD])
        .output()
        .expect("mosquitto_passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = format!(
        "user root\nper_listener_settings false\nallow_anonymous false\npassword_file {passwd}\n\
         persistence false\nlog_dest stdout\nlog_type all\n\
         listener 8883 {ip}\ncafile {ca}\ncertfile {srv}\nkeyfile {srvkey}\nrequire_certificate true\n\
         listener 8884 {ip}\ncafile {ca}\ncertfile {old}\nkeyfile {oldkey}\n",
        passwd = p("passwd"),
        ca = p("ca.pem"),
        srv = p("broker.pem"),
        srvkey = p("broker.key"),
        old = p("expired.pem"),
        oldkey = p("expired.key"),
    );
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", lab.get("NS_SRV"), "mosquitto", "-c"])
        .arg(dir.join("mosquitto.conf"))
        .stdout(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    let broker = TlsBroker(child);
    for _ in 0..100 {
        let ss = lab.exec("srv", &["ss", "-Hltn", "sport = :8884"]);
        if String::from_utf8_lossy(&ss.stdout).contains(":8884") {
            return broker;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "TLS mosquitto did not listen: {}",
        std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
    );
}

fn tls_config(url: String, dir: PathBuf, ca: &'static str) -> impl Fn(String) -> String {
    move |c: String| {
        let p = |f: &str| dir.join(f).display().to_string();
        c.replace("mqtt_url = \"\"", &format!("mqtt_url = \"{url}\""))
            .replace("ca_file = \"\"", &format!("ca_file = \"{}\"", p(ca)))
            .replace(
                "client_cert = \"\"",
                &format!("client_cert = \"{}\"", p("client.pem")),
            )
            .replace(
                "client_key = \"\"",
                &format!("client_key = \"{}\"", p("client.key")),
            )
            .replace(
                "credentials_file = \"\"",
                &format!("credentials_file = \"{}\"", p("credentials")),
            )
            .replace("reconnect_max = \"60s\"", "reconnect_max = \"2s\"")
    }
}

#[test]
fn tls_with_test_ca_works_and_bad_certificates_say_why() {
    need_root!("tls_with_test_ca_works_and_bad_certificates_say_why");
    let lab = Lab::up(&[]);
    let dir = lab.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    ca(&dir, "ca");
    ca(&dir, "other-ca");
    let ip = lab.get("MQTT_IP").to_string();
    signed(
        &dir,
        "ca",
        "broker",
        "2",
        &format!("subjectAltName=IP:{ip}\n"),
    );
    signed(
        &dir,
        "ca",
        "expired",
        "-1",
        &format!("subjectAltName=IP:{ip}\n"),
    );
    signed(&dir, "ca", "client", "2", "extendedKeyUsage=clientAuth\n");
    std::fs::write(dir.join("credentials"), format!("gw-user\n{PASSWORD}\n")).unwrap();
    let _broker = start_broker(&lab, &dir);

    // The right CA, a client certificate and a password.
    let mut d = lab.daemon(
        "gwhard",
        tls_config(format!("mqtts://{ip}:8883"), dir.clone(), "ca.pem"),
    );
    d.wait_for("connected over TLS", Duration::from_secs(20), |s| {
        s["telemetry"]["connected"] == true && s["telemetry"]["sent"].as_u64() >= Some(2)
    });
    let p = |f: &str| dir.join(f).display().to_string();
    let out = lab.exec(
        "peer",
        &[
            "mosquitto_sub",
            "-h",
            &ip,
            "-p",
            "8883",
            "--cafile",
            &p("ca.pem"),
            "--cert",
            &p("client.pem"),
            "--key",
            &p("client.key"),
            "-u",
            "gw-user",
            "-P",
            PASSWORD,
            "-t",
            "edgereach/+/+/state",
            "-C",
            "1",
            "-W",
            "5",
        ],
    );
    let state = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("retained state over TLS: {state}");
    assert!(
        state.contains("\"online\""),
        "{state} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = d.status().unwrap();
    assert_eq!(s["telemetry"]["broker"], format!("mqtts://{ip}:8883"));
    let (ok, _) = d.stop();
    assert!(ok);
    assert!(!d.log().contains(PASSWORD), "the password is never logged");
    assert!(!s.to_string().contains(PASSWORD));

    // A CA that did not sign the broker's certificate.
    let d = lab.daemon(
        "gwhard",
        tls_config(format!("mqtts://{ip}:8883"), dir.clone(), "other-ca.pem"),
    );
    d.wait_for("a clear TLS reason", Duration::from_secs(15), |s| {
        s["telemetry"]["state"] == "unavailable"
            && s["telemetry"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("TLS") && r.contains("UnknownIssuer"))
    });
    let reason = d.status().unwrap()["telemetry"]["reason"].clone();
    eprintln!("wrong CA: {reason}");
    idle_and_alive(&d);
    drop(d);

    // The broker's certificate has expired.
    let d = lab.daemon(
        "gwhard",
        tls_config(format!("mqtts://{ip}:8884"), dir.clone(), "ca.pem"),
    );
    d.wait_for("a clear TLS reason", Duration::from_secs(15), |s| {
        s["telemetry"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("TLS") && r.contains("Expired"))
    });
    let reason = d.status().unwrap()["telemetry"]["reason"].clone();
    eprintln!("expired certificate: {reason}");
    idle_and_alive(&d);
}

/// The daemon keeps answering and retries paced, not in a hot loop.
fn idle_and_alive(d: &common::lab::LabDaemon) {
    let pid = d.child.id();
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split(' ').collect();
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let before = ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = ticks(pid) - before;
    assert!(d.status().is_some(), "daemon still answers");
    // 3 s at 100 ticks/s: a hot loop would use ~300.
    assert!(used < 60, "CPU ticks in 3 s while retrying: {used}");
}
