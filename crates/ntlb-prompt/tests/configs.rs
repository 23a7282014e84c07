//! The shipped configs parse, and their defaults are the paper's.

use ntlb_prompt::train::TrainConfig;

fn read(name: &str) -> TrainConfig {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs").join(name);
    ntlb_core::toml_config::read_toml(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()))
}

#[test]
fn shipped_configs_are_the_paper_settings() {
    let ntlb = read("coop-ntlb.toml");
    let mut expected = TrainConfig::default();
    expected.prompt.allow_duplicate_names = true;
    assert_eq!(ntlb, expected, "coop-ntlb.toml drifted from the defaults");
    // coop.toml extends coop-ntlb.toml and sets λ = 0 only.
    let coop = read("coop.toml");
    assert_eq!(coop.loss.expl_weight, 0.0);
}

#[test]
fn unknown_keys_are_refused() {
    let err = toml::from_str::<TrainConfig>("[optim]\nlearning_rate = 0.1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("learning_rate"), "{err}");
}
