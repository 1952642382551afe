//! `--requirepass`: every command but AUTH, HELLO and QUIT is refused until the connection
//! authenticates, with Redis's error texts; real clients authenticate as they do with Redis.

mod common;

use common::{Node, Raw, bulk, err, temp_dir};
use quorum::resp::Frame;

#[test]
fn requirepass_gates_every_client_command() {
    let node = Node::try_start(&temp_dir("auth"), &["--requirepass", "s3cret"]).unwrap();
    let mut raw = node.raw();
    assert_eq!(
        raw.cmd(&["GET", "k"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(
        raw.cmd(&["SET", "k", "v"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(raw.cmd(&["INFO"]), err("NOAUTH Authentication required."));
    assert_eq!(raw.cmd(&["PING"]), err("NOAUTH Authentication required."));
    assert_eq!(
        raw.cmd(&["AUTH", "wrong"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        raw.cmd(&["AUTH", "someone", "s3cret"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert!(
        matches!(raw.cmd(&["HELLO", "3"]), Frame::Error(e) if e.starts_with("NOAUTH HELLO must be called"))
    );
    assert_eq!(raw.cmd(&["AUTH", "s3cret"]), Frame::ok());
    assert_eq!(raw.cmd(&["SET", "k", "v"]), Frame::ok());
    assert_eq!(raw.cmd(&["GET", "k"]), bulk("v"));

    // HELLO ... AUTH authenticates and switches protocol at once.
    let mut raw = Raw::connect(node.port);
    assert!(matches!(
        raw.cmd(&["HELLO", "3", "AUTH", "default", "nope"]),
        Frame::Error(e) if e.starts_with("WRONGPASS")
    ));
    assert!(matches!(
        raw.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]),
        Frame::Map(_)
    ));
    assert_eq!(raw.cmd(&["GET", "k"]), bulk("v"));

    // A real client with the password in its URL.
    let url = format!("redis://:s3cret@127.0.0.1:{}/", node.port);
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let value: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(value, "v");
    let url = format!("redis://:bad@127.0.0.1:{}/", node.port);
    assert!(redis::Client::open(url).unwrap().get_connection().is_err());
}

#[test]
fn without_requirepass_auth_says_so() {
    let node = Node::start(&temp_dir("noauth"));
    let mut raw = node.raw();
    assert_eq!(
        raw.cmd(&["AUTH", "x"]),
        err(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
        )
    );
    assert_eq!(raw.cmd(&["AUTH", "default", "anything"]), Frame::ok());
    assert_eq!(raw.cmd(&["GET", "k"]), Frame::Null);
}

#[test]
fn a_config_file_holds_flags_and_the_command_line_overrides_it() {
    let dir = temp_dir("config-file");
    let file = dir.join("quorum.toml");
    std::fs::write(
        &file,
        "requirepass = \"from-file\"\nclient_output_buffer_limit = 2000000\nmaxclients = 7\nrejoin = true\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let node = Node::try_start(&dir.join("a"), &["--config", &file]).unwrap();
    let mut raw = node.raw();
    assert_eq!(
        raw.cmd(&["GET", "k"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(raw.cmd(&["AUTH", "from-file"]), Frame::ok());
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "maxclients"]),
        Frame::Array(vec![bulk("maxclients"), bulk("7")])
    );
    // A switch (`rejoin = true`) reaches the node too.
    let log = node.log_lines().join("\n");
    assert!(
        log.contains("--rejoin means nothing without --cluster"),
        "{log}"
    );
    drop(node);
    let node = Node::try_start(
        &dir.join("b"),
        &["--config", &file, "--requirepass", "from-cli"],
    )
    .unwrap();
    let mut raw = node.raw();
    assert!(
        matches!(raw.cmd(&["AUTH", "from-file"]), Frame::Error(e) if e.starts_with("WRONGPASS"))
    );
    assert_eq!(raw.cmd(&["AUTH", "from-cli"]), Frame::ok());
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "port = [1, 2]\n").unwrap();
    let error = Node::try_start(&dir.join("c"), &["--config", &bad.display().to_string()])
        .err()
        .expect("a bad config file stops the node");
    assert!(error.contains("must list strings"), "{error}");
}
