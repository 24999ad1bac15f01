//! The console's page frame (navigation, styles, htmx and the CSRF header its
//! requests carry) and the small formatting every page shares.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Operator;

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{display:flex;gap:1.2em;align-items:center;padding:.6em 1.2em;background:#1d2330}
nav a,nav button{color:#dfe6f3;text-decoration:none;font-weight:600;background:none;border:0;cursor:pointer;font:inherit}
nav .brand{color:#fff;margin-right:1em} nav .spacer{flex:1}
main{padding:1em 1.5em;max-width:1200px}
h1{font-size:1.4em;margin:.4em 0} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin:.3em 0 1em;box-shadow:0 1px 2px #0001}
th,td{padding:.3em .7em;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.zero{color:#b3b9c4} .dead{color:#b42318;font-weight:600} .done{color:#067647} .retrying{color:#b54708}
button,select,input{font:inherit} button.act{padding:.2em .8em;border:1px solid #9aa4b2;border-radius:4px;background:#fff;cursor:pointer}
button.danger{border-color:#b42318;color:#b42318}
pre{background:#fff;padding:.6em;border:1px solid #e3e6eb;white-space:pre-wrap;max-width:100%}
.flash{background:#ecfdf3;border:1px solid #abefc6;padding:.4em .8em;margin:.4em 0}
.error{color:#b42318} .muted{color:#667085} .charts{display:flex;flex-wrap:wrap;gap:1em}
.bar{display:inline-block;height:.7em;background:#4e79a7;vertical-align:middle}
form.login{max-width:320px;margin:12vh auto;background:#fff;padding:1.5em;display:flex;flex-direction:column;gap:.6em;box-shadow:0 1px 3px #0002}
mark{background:#fde68a}
";

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            title { (title) " · Switchboard" }
            style { (PreEscaped(STYLE)) }
            script src=(super::HTMX_PATH) {}
        }
    }
}

/// A page without navigation (the login form).
pub fn bare(title: &str, content: Markup) -> Markup {
    html! { (DOCTYPE) html lang="en" { (head(title)) body { (content) } } }
}

/// A console page: navigation, then `content`; every htmx request from it
/// carries the operator's CSRF token.
pub fn page(title: &str, operator: &Operator, content: Markup) -> Markup {
    let csrf_header = format!(r#"{{"X-CSRF-Token": "{}"}}"#, operator.csrf);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-headers=(csrf_header) {
                nav {
                    a.brand href="/console/jobs" { "Switchboard" }
                    a href="/console/jobs" { "Jobs" }
                    a href="/console/workers" { "Workers" }
                    a href="/console/calls" { "Calls" }
                    a href="/console/leads" { "Leads" }
                    a href="/console/agents" { "Agents" }
                    span.spacer {}
                    button hx-post="/console/logout" { "Log out" }
                }
                main { h1 { (title) } (content) }
            }
        }
    }
}

pub fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Free text with any phone number in it masked.
pub fn masked(text: &str) -> String {
    switchboard_jobs::phone::mask_in_text(text)
}
