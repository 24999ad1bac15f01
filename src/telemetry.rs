//! Structured logs: JSON lines when `LOG_FORMAT=json`, readable text otherwise,
//! filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    init_with_default("info,sqlx=warn");
}

/// Like [`init`], with `default` as the filter when `RUST_LOG` is unset.
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}

/// `+919876543210` -> `+91******3210`: enough to tell calls apart in logs.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let keep_head = if chars[0] == '+' { 3 } else { 2 };
    let hidden = chars.len() - keep_head - 4;
    chars[..keep_head].iter().chain(std::iter::repeat_n(&'*', hidden)).chain(&chars[chars.len() - 4..]).collect()
}

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn masks_all_but_country_code_and_last_four() {
        assert_eq!(mask_phone("+919876543210"), "+91******3210");
        assert_eq!(mask_phone("+14158675309"), "+14*****5309");
        assert_eq!(mask_phone("12345"), "*****");
    }
}
