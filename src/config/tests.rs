use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml")
}

const MINIMAL: &str = r#"
[[listener]]
address = "127.0.0.1:8080"

[pool.api]
backends = ["10.0.0.5:8080", { address = "10.0.0.6:8080", weight = 2 }]
"#;

#[test]
fn minimal_file_gets_every_default() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.admission, AdmissionConfig::default());
    assert_eq!(c.admission.baseline_connections, 10_000);
    assert_eq!(c.admission.burst_connections, 40_000);
    assert_eq!(c.timeouts.request_header, Duration::from_secs(10));
    assert_eq!(c.timeouts.idle, Duration::from_secs(75));
    assert_eq!(c.limits.max_header_bytes, 32 * 1024);
    assert_eq!(c.limits.max_request_body, 10 * 1024 * 1024);
    assert_eq!(c.admin.address, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(c.listeners[0].name, "http");
    assert_eq!(c.log.access_log, "stdout");
    let pool = &c.pools["api"];
    assert_eq!(pool.backends[1].weight, 2);
    assert_eq!(
        c.routes.len(),
        1,
        "one pool without routes gets a catch-all"
    );
    assert_eq!(c.routes[0].pool, "api");
}

#[test]
fn example_config_in_the_repository_is_valid() {
    let text = include_str!("../../config/portero.toml");
    let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.routes.len(), 3);
    assert!(!c.routes[1].access.is_open(), "the /admin route is guarded");
    assert!(c.security.rate_limit.is_some());
    assert_eq!(c.pools["web"].protocol, UpstreamProtocol::H2c);
}

#[test]
fn data_tier_example_is_valid() {
    // A check reads its password from the variable it names when the config loads: the
    // example's is not set here, so it names one that always is.
    let text = include_str!("../../config/data-tier.toml");
    let missing = parse(text).unwrap_err().to_string();
    assert!(
        missing.contains("`REDIS_CHECK_PASSWORD`, which is not set"),
        "{missing}"
    );
    let text = text
        .replace("REDIS_CHECK_PASSWORD", "PATH")
        .replace("MYSQL_CHECK_PASSWORD", "PATH");
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.routes.is_empty(), "no HTTP listener, no route");
    assert_eq!(c.pools["redis-primary"].balance, Balance::LeastConn);
    assert_eq!(
        c.pools["redis-primary"].role(),
        crate::config::Role::Primary
    );
    let tls = &c.listeners[2].mode;
    assert_eq!(
        tls.pool_for(Some("replica.db.example")),
        Some("mysql-replicas")
    );
    assert_eq!(
        tls.pool_for(Some("x.analytics.db.example")),
        Some("mysql-replicas")
    );
    assert_eq!(tls.pool_for(Some("db.example")), Some("mysql-primary"));
    assert_eq!(tls.pool_for(None), Some("mysql-primary"));
    assert_eq!(
        c.pools["mysql-replicas"].role(),
        crate::config::Role::Replica
    );
}

#[test]
fn every_problem_is_reported_with_its_line_and_column() {
    let text = r#"
[timeouts]
idle = "forever"

[[listener]]
adress = "127.0.0.1:8080"

[[route]]
pool = "nope"

[pool.api]
backends = ["not-an-address"]
"#;
    let e = parse(text).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("test.toml:3:8"), "{shown}");
    assert!(shown.contains("invalid duration"), "{shown}");
    assert!(shown.contains("unknown field `adress`"), "{shown}");
    assert!(shown.contains("test.toml:6:1"), "{shown}");
    assert!(shown.contains("test.toml:12:"), "{shown}");
    assert!(e.problems.len() >= 3, "{shown}");
}

#[test]
fn cross_references_are_checked() {
    let text = r#"
[[listener]]
address = "127.0.0.1:8080"

[[route]]
pool = "missing"

[pool.api]
backends = ["10.0.0.5:8080"]
"#;
    let shown = parse(text).unwrap_err().to_string();
    assert!(
        shown.contains("pool `missing`, which does not exist"),
        "{shown}"
    );
    assert!(shown.contains("test.toml:6:8"), "{shown}");
}

#[test]
fn semantic_problems_are_found() {
    let cases = [
        (
            "[admission]\nbaseline_connections = 5\nburst_connections = 2\n",
            "must be at least baseline",
        ),
        (
            "[admission]\nat_limit = \"drop\"\n",
            "unknown variant `drop`",
        ),
        ("[timeouts]\nidle = 10\n", "invalid type"),
        ("[timeouts]\nidle = \"10\"\n", "needs a unit"),
        (
            "[limits]\nmax_header_bytes = \"1XB\"\n",
            "invalid size unit",
        ),
        ("[bogus]\nx = 1\n", "unknown section `bogus`"),
        (
            "[pool.x]\nbalance = \"fastest\"\nbackends = []\n",
            "unknown variant `fastest`",
        ),
        (
            "[pool.y]\nbackends = [{ address = \"10.0.0.1:1\", weight = 0 }]\n",
            "weight 0",
        ),
        (
            "[pool.z]\nbackends = [\"10.0.0.1:1\", \"10.0.0.1:1\"]\n",
            "listed twice",
        ),
        (
            "[pool.w]\nprotocol = \"h3\"\nbackends = []\n",
            "unknown variant `h3`",
        ),
        ("[pool.v]\n", "has no `backends`"),
        (
            "[[route]]\nhost = \"http://x\"\npool = \"api\"\n",
            "invalid host",
        ),
        (
            "[[route]]\npath_prefix = \"api\"\npool = \"api\"\n",
            "must start with `/`",
        ),
        (
            "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:1\"\n",
            "two listeners are named `http`",
        ),
        ("this is not toml", "expected `=`"),
    ];
    for (extra, expected) in cases {
        let text = format!("{MINIMAL}\n{extra}");
        let shown = match parse(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        assert!(
            shown.contains(expected),
            "for {extra:?} expected {expected:?} in:\n{shown}"
        );
    }
}

#[test]
fn no_listener_or_no_pool_is_an_error() {
    let shown = parse("[pool.a]\nbackends = []\n").unwrap_err().to_string();
    assert!(shown.contains("no [[listener]]"), "{shown}");
    let shown = parse("[[listener]]\naddress = \"127.0.0.1:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(shown.contains("no [pool.NAME]"), "{shown}");
    let two = "[[listener]]\naddress = \"127.0.0.1:1\"\n[pool.a]\nbackends = []\n[pool.b]\nbackends = []\n";
    assert!(
        parse(two)
            .unwrap_err()
            .to_string()
            .contains("several pools and no [[route]]")
    );
}

#[test]
fn security_keys_parse_and_bad_values_are_shown_in_place() {
    let text = format!(
        "[security]\nmax_connections_per_ip = 20\nallow = [\"10.0.0.0/8\"]\ndeny = [\"10.6.0.0/16\"]\n\
         [security.rate_limit]\nrequests_per_second = 5\nburst = 10\nstore = \"redis://127.0.0.1:6379/0\"\n\
         {MINIMAL}"
    )
    .replace(
        "address = \"127.0.0.1:8080\"",
        "address = \"127.0.0.1:8080\"\nproxy_protocol = { trusted = [\"10.0.0.0/8\"] }",
    )
    .replace("[pool.api]", "[[route]]\npool = \"api\"\ndeny = [\"192.0.2.0/24\"]\n[pool.api]");
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.security.max_connections_per_ip, 20);
    assert!(!c.security.access.permits("10.6.0.1".parse().unwrap()));
    assert!(c.security.access.permits("10.1.0.1".parse().unwrap()));
    let limit = c.security.rate_limit.as_ref().unwrap();
    assert_eq!((limit.requests_per_second, limit.burst), (5.0, 10));
    assert_eq!(
        limit.store,
        RateLimitStore::Redis("redis://127.0.0.1:6379/0".into())
    );
    assert_eq!(limit.max_clients, 100_000);
    assert!(!c.routes[0].access.permits("192.0.2.1".parse().unwrap()));
    assert_eq!(
        c.listeners[0].proxy_protocol,
        Some(vec!["10.0.0.0/8".parse().unwrap()])
    );

    let bad =
        "[security.rate_limit]\nrequests_per_second = 0\nburst = 0\nstore = \"memcached://x\"\n";
    let shown = parse(&format!("{bad}{MINIMAL}")).unwrap_err().to_string();
    assert!(
        shown.contains("test.toml:2:23: security.rate_limit.requests_per_second"),
        "{shown}"
    );
    assert!(
        shown.contains("test.toml:3:9: security.rate_limit.burst"),
        "{shown}"
    );
    assert!(
        shown.contains("test.toml:4:9: security.rate_limit.store"),
        "{shown}"
    );
    let empty = MINIMAL.replace(
        "address = \"127.0.0.1:8080\"",
        "address = \"127.0.0.1:8080\"\nproxy_protocol = { trusted = [] }",
    );
    assert!(
        parse(&empty)
            .unwrap_err()
            .to_string()
            .contains("proxy_protocol.trusted is empty")
    );
}

#[test]
fn pool_policies_parse_with_defaults() {
    let text = format!(
        "{MINIMAL}\nbalance = \"consistent_hash\"\nhash_key = \"cookie:session\"\nslow_start = \"30s\"\nretries = 2\n\
         [pool.api.health_check]\npath = \"/healthz\"\nhost = \"api.internal\"\n"
    );
    let pool = &parse(&text).unwrap().pools["api"];
    assert_eq!(pool.balance, Balance::ConsistentHash);
    assert_eq!(pool.hash_key, HashKey::Cookie("session".into()));
    assert_eq!(pool.slow_start, Duration::from_secs(30));
    assert_eq!(pool.retries, 2);
    assert_eq!(pool.retry_budget, 0.2);
    assert_eq!(
        pool.outlier,
        OutlierConfig {
            consecutive_failures: 5,
            ejection: Duration::from_secs(30)
        }
    );
    let check = pool.health_check.as_ref().unwrap();
    assert_eq!(
        (check.interval, check.timeout, check.rise, check.fall),
        (Duration::from_secs(2), Duration::from_secs(1), 2, 3)
    );
    match &check.kind {
        crate::config::CheckKind::Http(http) => {
            assert_eq!(
                (http.path.as_str(), http.host.as_deref()),
                ("/healthz", Some("api.internal"))
            );
        }
        other => panic!("a check with a path is an HTTP check: {other:?}"),
    }
    let plain = &parse(MINIMAL).unwrap().pools["api"];
    assert_eq!(
        (
            plain.retries,
            plain.health_check.is_none(),
            plain.slow_start
        ),
        (1, true, Duration::ZERO)
    );
}

#[test]
fn pool_policies_are_validated() {
    let cases = [
        ("hash_key = \"client_ip\"\n", "only applies to balance"),
        (
            "balance = \"consistent_hash\"\nhash_key = \"query:x\"\n",
            "invalid hash_key",
        ),
        ("retry_budget = 1.5\n", "between 0 and 1"),
        (
            "[pool.api.health_check]\npath = \"healthz\"\n",
            "must start with `/`",
        ),
        ("[pool.api.health_check]\nrise = 0\n", "at least 1"),
        (
            "[pool.api.health_check]\ninterval = \"1ms\"\n",
            "at least 10ms",
        ),
        (
            "[pool.api.outlier]\nconsecutive = 3\n",
            "unknown field `consecutive`",
        ),
    ];
    for (extra, expected) in cases {
        let shown = parse(&format!("{MINIMAL}{extra}")).unwrap_err().to_string();
        assert!(
            shown.contains(expected),
            "for {extra:?} expected {expected:?} in:\n{shown}"
        );
    }
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

#[test]
fn discovery_replaces_backends_and_takes_one_source() {
    let base = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[pool.api.discovery]\n";
    let c = parse(&format!(
        "{base}dns = \"api.internal:8080\"\nnameserver = \"127.0.0.1:5353\"\nrefresh = \"1s\"\n"
    ))
    .unwrap();
    let d = c.pools["api"].discovery.as_ref().unwrap();
    assert_eq!(
        d.source,
        DiscoverySource::Dns {
            name: "api.internal".into(),
            port: 8080
        }
    );
    assert_eq!(
        (d.refresh, d.nameserver),
        (
            Duration::from_secs(1),
            Some("127.0.0.1:5353".parse().unwrap())
        )
    );
    assert!(c.pools["api"].backends.is_empty());
    let c = parse(&format!(
        "{base}http = \"http://127.0.0.1:8500/backends.json\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.pools["api"].discovery.as_ref().unwrap().source.kind(),
        "http"
    );
    let cases = [
        ("dns = \"a:1\"\nsrv = \"_x._tcp.a\"\n", "exactly one source"),
        ("refresh = \"1s\"\n", "exactly one source"),
        ("dns = \"api.internal\"\n", "name:port"),
        ("http = \"ftp://x/\"\n", "http:// URL"),
        (
            "file = \"/x.json\"\nnameserver = \"127.0.0.1:53\"\n",
            "only applies to dns",
        ),
        ("dns = \"a:1\"\nconsul = true\n", "unknown field `consul`"),
    ];
    for (extra, expected) in cases {
        let shown = parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(
            shown.contains(expected),
            "for {extra:?} expected {expected:?} in:\n{shown}"
        );
    }
    let both = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[pool.api]\nbackends = [\"10.0.0.1:80\"]\n[pool.api.discovery]\nfile = \"/x.json\"\n";
    assert!(
        parse(both)
            .unwrap_err()
            .to_string()
            .contains("both `backends` and `discovery`")
    );
}

#[test]
fn an_acme_listener_needs_no_files_but_http01_alone_needs_a_plain_listener() {
    let acme = |challenges: &str, plain: bool| {
        let plain = if plain {
            "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n"
        } else {
            ""
        };
        format!(
            r#"{plain}
[[listener]]
name = "https"
address = "127.0.0.1:8443"
[listener.tls.acme]
names = ["example.com"]
challenges = [{challenges}]

[pool.api]
backends = ["10.0.0.5:8080"]
"#
        )
    };
    let config = parse(&acme("\"http-01\"", true)).unwrap();
    let tls = config.listeners[1].tls.as_ref().unwrap();
    assert!(tls.certs.is_empty());
    assert_eq!(tls.acme.as_ref().unwrap().names, ["example.com"]);
    parse(&acme("\"tls-alpn-01\"", false)).unwrap();
    let error = parse(&acme("\"http-01\"", false)).unwrap_err().to_string();
    assert!(error.contains("needs a plain HTTP listener"), "{error}");
    let error = parse(&acme("\"dns-01\"", true)).unwrap_err().to_string();
    assert!(error.contains("`dns-01` is not answered"), "{error}");
}
