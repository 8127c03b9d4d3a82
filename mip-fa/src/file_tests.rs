use super::*;
use crate::config::SolicitedReply;

const MINIMAL: &str = r#"
[foreign_agent]
interface = "eth0"
care_of_address = "198.18.1.1"
prefix_len = 24
"#;

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fa.toml")
}

#[test]
fn minimal_config_takes_the_named_defaults() {
    let c = DaemonConfig::parse(MINIMAL).expect("valid");
    let fa = &c.foreign_agent;
    assert_eq!(fa.max_lifetime, DEFAULT_MAX_LIFETIME);
    assert_eq!(
        (fa.max_pending, fa.pending_timeout),
        (5, Duration::from_secs(7))
    );
    assert!(fa.reverse_tunnel && fa.reverse_tunnel_ttl_check && !fa.reverse_tunnel_mandatory);
    assert!(fa.minimal_encapsulation && fa.gre_encapsulation && !fa.encapsulating_delivery);
    assert_eq!(fa.local_addresses, vec![Ipv4Addr::new(198, 18, 1, 1)]);
    let adv = &fa.advertisement;
    assert_eq!(
        (adv.max_interval, adv.min_interval, adv.lifetime),
        (Duration::from_secs(1), Duration::from_millis(750), 3)
    );
    assert_eq!(adv.destination, Ipv4Addr::new(224, 0, 0, 1));
    assert_eq!(adv.solicited_reply, SolicitedReply::Unicast);
    assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
    assert!(c.data_plane && c.disable_kernel_forwarding);
    assert_eq!(flag_letters(fa), "---FMGT");
}

#[test]
fn sample_config_loads_with_lab_addresses() {
    let c = DaemonConfig::load(&sample_path()).expect("config/fa.toml must load");
    let coa = c.foreign_agent.care_of_address;
    assert!(
        coa.octets()[0] == 198 && (coa.octets()[1] & 0xfe) == 18,
        "lab address"
    );
    assert!(c.control_socket.starts_with("/tmp"));
    assert!(c
        .summary()
        .starts_with("configuration ok: foreign agent 198.18.1.1/24 on eth0"));
}

#[test]
fn every_shipped_fa_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("config directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("fa") && name.ends_with(".toml") {
            DaemonConfig::load(&entry.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn unknown_field_is_refused_with_its_name() {
    let text = MINIMAL.replace("prefix_len = 24", "prefix_len = 24\nmax_lifetme = 5");
    let e = DaemonConfig::parse(&text)
        .expect_err("typo refused")
        .to_string();
    assert!(e.contains("max_lifetme"), "{e}");
    let text = format!("{MINIMAL}\n[advertisement]\ninterval = 5\n");
    assert!(DaemonConfig::parse(&text).is_err());
}

#[test]
fn invalid_values_are_refused_with_a_reason() {
    for (extra, needle) in [
        ("[advertisement]\ndestination = \"198.18.1.255\"", "224.0.0.1 or 255.255.255.255"),
        ("[advertisement]\ninterval_ms = 1000\nlifetime = 2", "at least 3 advertisement intervals"),
        ("[advertisement]\ninterval_ms = 1000\nmin_interval_ms = 2000", "must not exceed"),
        ("[advertisement]\ninterval_ms = 0", "between 1 and"),
        ("[[home_agent]]\naddress = \"198.18.0.1\"\nspi = 255\nkey = \"000102030405060708090a0b0c0d0e0f\"", "reserved"),
        ("[[home_agent]]\naddress = \"198.18.0.1\"\nspi = 300\nkey = \"0001\"", "at least 16"),
        ("[[home_agent]]\naddress = \"198.18.0.1\"\nspi = 300\nkey = \"zz\"", "not hex"),
        ("[[mobile_node]]\nspi = 300\nkey = \"000102030405060708090a0b0c0d0e0f\"", "home_address, an nai"),
    ] {
        let e = DaemonConfig::parse(&format!("{MINIMAL}\n{extra}\n")).expect_err(extra).to_string();
        assert!(e.contains(needle), "{extra}: {e}");
    }
    for (from, to, needle) in [
        ("prefix_len = 24", "prefix_len = 33", "prefix_len"),
        ("\"198.18.1.1\"", "\"224.0.0.1\"", "care_of_address"),
        ("\"eth0\"", "\"an-interface-name-too-long\"", "interface"),
    ] {
        let e = DaemonConfig::parse(&MINIMAL.replace(from, to))
            .expect_err(to)
            .to_string();
        assert!(e.contains(needle), "{to}: {e}");
    }
    let e = DaemonConfig::parse(&format!(
        "{MINIMAL}reverse_tunnel = false\nreverse_tunnel_mandatory = true\n"
    ))
    .expect_err("contradiction")
    .to_string();
    assert!(e.contains("reverse_tunnel_mandatory"), "{e}");
}

#[test]
fn associations_are_read_with_their_algorithms() {
    let text = format!(
        "{MINIMAL}\n[[home_agent]]\naddress = \"198.18.0.1\"\nspi = 300\nalgorithm = \"keyed-md5\"\n\
         key = \"000102030405060708090a0b0c0d0e0f\"\n\n[[mobile_node]]\nnai = \"mn1@sidmip.example\"\n\
         spi = 400\nkey = \"0f0e0d0c0b0a09080706050403020100\"\n"
    );
    let c = DaemonConfig::parse(&text).expect("valid");
    let fa = &c.foreign_agent;
    assert_eq!(
        fa.home_agents[0].sa.algorithm,
        AuthAlgorithm::KeyedMd5PrefixSuffix
    );
    assert_eq!(fa.home_agents[0].sa.key.len(), 16);
    assert_eq!(fa.mobile_nodes[0].sa.algorithm, AuthAlgorithm::HmacMd5);
    assert!(fa
        .mobile_node_sa(Ipv4Addr::UNSPECIFIED, Some(b"mn1@sidmip.example"))
        .is_some());
    assert!(fa.home_agent_sa(Ipv4Addr::new(198, 18, 0, 1)).is_some());
    assert!(
        !format!("{:?}", fa.home_agents[0].sa).contains("0001"),
        "keys never in Debug output"
    );
}
