//! Structured logs on stderr, filtered by `RUST_LOG` (default `info`), in the
//! format `LOG_FORMAT` names: `text` (readable; colour only when stderr is a
//! terminal, never in Heroku's log stream), `json` (one object per line) or
//! `logfmt` (`key=value` pairs, as Heroku's own log lines and add-ons read them).
//! Span fields, such as a request's `request_id`, are on every line inside the span.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub fn init() {
    init_with_default("info,sqlx=warn");
}

/// Like [`init`], with `default` as the filter when `RUST_LOG` is unset.
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let format = std::env::var("LOG_FORMAT").unwrap_or_default().to_ascii_lowercase();
    let _ = match format.as_str() {
        "json" => builder.json().flatten_event(true).try_init(),
        "logfmt" => builder.fmt_fields(LogfmtFields).event_format(Logfmt).try_init(),
        _ => builder.try_init(),
    };
}

/// One line per event: `ts=… level=… target=…`, the fields of the spans it is
/// in (outermost first), then its own fields, the message as `msg`.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        write!(writer, "ts={ts} level={} target={}", meta.level().as_str().to_ascii_lowercase(), meta.target())?;
        for span in ctx.event_scope().into_iter().flat_map(|scope| scope.from_root()) {
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>().filter(|f| !f.is_empty()) {
                write!(writer, " {fields}")?;
            }
        }
        let mut pairs = Pairs { out: String::new() };
        event.record(&mut pairs);
        writeln!(writer, "{}", pairs.out)
    }
}

/// Span fields in logfmt, so [`Logfmt`] can copy them onto each line.
pub struct LogfmtFields;

impl<'w> FormatFields<'w> for LogfmtFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut pairs = Pairs { out: String::new() };
        fields.record(&mut pairs);
        writer.write_str(pairs.out.trim_start())
    }
}

/// Collects ` key=value` pairs, quoting values that need it.
struct Pairs {
    out: String,
}

impl Visit for Pairs {
    fn record_str(&mut self, field: &Field, value: &str) {
        let key = if field.name() == "message" { "msg" } else { field.name() };
        let _ = write!(self.out, " {key}=");
        push_value(&mut self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// `value` as is when it is a plain token, else in double quotes with `"`, `\`
/// and control characters escaped, so one event is always one line.
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_value;

    fn quoted(value: &str) -> String {
        let mut out = String::new();
        push_value(&mut out, value);
        out
    }

    #[test]
    fn plain_tokens_stay_bare_and_everything_else_is_quoted_on_one_line() {
        assert_eq!(quoted("POST"), "POST");
        assert_eq!(quoted("/webhooks/twilio/status"), "/webhooks/twilio/status");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("web listening"), "\"web listening\"");
        assert_eq!(quoted("a=b"), "\"a=b\"");
        assert_eq!(quoted("say \"hi\"\nbye\\"), "\"say \\\"hi\\\"\\nbye\\\\\"");
        assert_eq!(quoted("bell\u{7}"), "\"bell\\u{7}\"");
    }
}
