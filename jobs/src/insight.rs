//! What one call tells us about the customer, as the model must answer it
//! (the strict JSON schema) and as it is validated and stored
//! (`insights.data`): written by `analyze`, read by `create-lead`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What one call tells us, exactly as validated and stored (`insights.data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insight {
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub budget_min_inr: Option<i64>,
    pub budget_max_inr: Option<i64>,
    pub preferred_locations: Vec<String>,
    pub property_type: Option<String>,
    pub property_size: Option<String>,
    pub purpose: Option<Purpose>,
    pub timeline: Timeline,
    pub financing_needed: Option<bool>,
    pub sentiment: Sentiment,
    pub sentiment_score: f64,
    pub intents: Vec<String>,
    pub key_topics: Vec<String>,
    pub pain_points: Vec<String>,
    pub objections: Vec<String>,
    pub summary: String,
    pub lead_score: i32,
    pub conversion_probability: i32,
    pub next_best_action: String,
    pub next_action_due_in_days: Option<i32>,
    /// Ours, never the model's: why its scores were lowered ([`Insight::parse`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_capped: Option<String>,
}

/// The highest score a call may get that names no budget, timeline,
/// location, property or purpose: nothing to sell on.
const SCORE_WITHOUT_FACTS: i32 = 30;
/// The highest score without a budget or a timeline: below any sensible
/// `HOT_LEAD_SCORE`, since "hot" means able and ready to buy.
const SCORE_WITHOUT_BUDGET_OR_TIMELINE: i32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Purpose {
    EndUse,
    Investment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum Timeline {
    #[serde(rename = "immediate")]
    #[sqlx(rename = "immediate")]
    Immediate,
    #[serde(rename = "1-3 months")]
    #[sqlx(rename = "1-3 months")]
    OneToThreeMonths,
    #[serde(rename = "3-6 months")]
    #[sqlx(rename = "3-6 months")]
    ThreeToSixMonths,
    #[serde(rename = "6+ months")]
    #[sqlx(rename = "6+ months")]
    OverSixMonths,
    #[serde(rename = "unknown")]
    #[sqlx(rename = "unknown")]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
    Mixed,
}

impl Insight {
    /// Parses the model's JSON and checks ranges and consistency; the error
    /// says what was wrong, and nothing invalid is ever stored.
    /// Scores the extracted facts do not support are lowered (a caller can
    /// talk a model into "score 100, mark hot"), saying so in `score_capped`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut insight: Self = serde_json::from_str(text).map_err(|e| format!("model answered invalid JSON: {e}"))?;
        insight.validate()?;
        insight.score_capped = None;
        insight.cap_scores_by_facts();
        Ok(insight)
    }

    fn cap_scores_by_facts(&mut self) {
        let budget = self.budget_min_inr.is_some() || self.budget_max_inr.is_some();
        let timeline = self.timeline != Timeline::Unknown;
        let other_fact = !self.preferred_locations.is_empty()
            || self.property_type.is_some()
            || self.property_size.is_some()
            || self.purpose.is_some();
        let (cap, missing) = match (budget || timeline, other_fact) {
            (true, _) => return,
            (false, true) => (SCORE_WITHOUT_BUDGET_OR_TIMELINE, "no budget or timeline"),
            (false, false) => (SCORE_WITHOUT_FACTS, "no budget, timeline, location, property or purpose"),
        };
        if self.lead_score > cap || self.conversion_probability > cap {
            self.score_capped = Some(format!(
                "lead_score {} and conversion_probability {} lowered to at most {cap}: the call names {missing}",
                self.lead_score, self.conversion_probability
            ));
            self.lead_score = self.lead_score.min(cap);
            self.conversion_probability = self.conversion_probability.min(cap);
        }
    }

    fn validate(&self) -> Result<(), String> {
        let percent = 0..=100;
        if !percent.contains(&self.lead_score) {
            return Err(format!("lead_score {} is outside 0-100", self.lead_score));
        }
        if !percent.contains(&self.conversion_probability) {
            return Err(format!("conversion_probability {} is outside 0-100", self.conversion_probability));
        }
        if !(-1.0..=1.0).contains(&self.sentiment_score) {
            return Err(format!("sentiment_score {} is outside [-1, 1]", self.sentiment_score));
        }
        if self.budget_min_inr.into_iter().chain(self.budget_max_inr).any(|b| b < 0) {
            return Err("a budget is negative".to_owned());
        }
        if let (Some(min), Some(max)) = (self.budget_min_inr, self.budget_max_inr)
            && min > max
        {
            return Err(format!("budget_min_inr {min} is above budget_max_inr {max}"));
        }
        if self.customer_email.as_deref().is_some_and(|e| !e.contains('@')) {
            return Err("customer_email is not an email address".to_owned());
        }
        if self.next_action_due_in_days.is_some_and(|d| !(0..=365).contains(&d)) {
            return Err("next_action_due_in_days is outside 0-365".to_owned());
        }
        if self.summary.trim().is_empty() || self.next_best_action.trim().is_empty() {
            return Err("summary and next_best_action must not be empty".to_owned());
        }
        Ok(())
    }

    /// The JSON schema the model must follow (`strict`: every property
    /// required, no others, optional values nullable). A nullable enum is an
    /// `anyOf` of the enum and `null`, a form OpenAI's structured outputs
    /// document as supported (nested `anyOf`) and its SDK generates for an
    /// optional enum; a `null` inside `enum` is valid JSON Schema but not a
    /// form OpenAI documents.
    pub fn schema() -> Value {
        let text = json!({ "type": "string" });
        let nullable_text = json!({ "type": ["string", "null"] });
        let nullable_integer = json!({ "type": ["integer", "null"] });
        let texts = json!({ "type": "array", "items": { "type": "string" } });
        let properties = json!({
            "customer_name": nullable_text,
            "customer_email": nullable_text,
            "budget_min_inr": nullable_integer,
            "budget_max_inr": nullable_integer,
            "preferred_locations": texts,
            "property_type": nullable_text,
            "property_size": nullable_text,
            "purpose": { "anyOf": [{ "type": "string", "enum": ["end_use", "investment"] }, { "type": "null" }] },
            "timeline": { "type": "string", "enum": ["immediate", "1-3 months", "3-6 months", "6+ months", "unknown"] },
            "financing_needed": { "type": ["boolean", "null"] },
            "sentiment": { "type": "string", "enum": ["positive", "neutral", "negative", "mixed"] },
            "sentiment_score": { "type": "number" },
            "intents": texts,
            "key_topics": texts,
            "pain_points": texts,
            "objections": texts,
            "summary": text,
            "lead_score": { "type": "integer" },
            "conversion_probability": { "type": "integer" },
            "next_best_action": text,
            "next_action_due_in_days": nullable_integer,
        });
        let required: Vec<&String> = properties.as_object().expect("object").keys().collect();
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "customer_name": "Rahul Sharma", "customer_email": null,
            "budget_min_inr": 8000000, "budget_max_inr": 12000000,
            "preferred_locations": ["Whitefield"], "property_type": "apartment", "property_size": "3BHK",
            "purpose": "end_use", "timeline": "1-3 months", "financing_needed": true,
            "sentiment": "positive", "sentiment_score": 0.6,
            "intents": ["site visit"], "key_topics": ["price"], "pain_points": [], "objections": ["price"],
            "summary": "Wants a 3BHK.", "lead_score": 80, "conversion_probability": 55,
            "next_best_action": "Book a site visit", "next_action_due_in_days": 2
        })
    }

    fn with(field: &str, value: Value) -> String {
        let mut v = valid();
        v[field] = value;
        v.to_string()
    }

    #[test]
    fn a_complete_answer_parses() {
        let insight = Insight::parse(&valid().to_string()).unwrap();
        assert_eq!(insight.timeline, Timeline::OneToThreeMonths);
        assert_eq!(insight.budget_max_inr, Some(12_000_000));
    }

    #[test]
    fn out_of_range_and_unknown_values_are_refused() {
        assert!(Insight::parse(&with("lead_score", json!(101))).unwrap_err().contains("lead_score"));
        assert!(Insight::parse(&with("sentiment_score", json!(1.5))).unwrap_err().contains("sentiment_score"));
        assert!(Insight::parse(&with("sentiment", json!("ecstatic"))).is_err());
        assert!(Insight::parse(&with("budget_min_inr", json!(20000000))).unwrap_err().contains("above"));
        assert!(Insight::parse(&with("surprise", json!(1))).is_err());
        assert!(Insight::parse("{\"customer_name\": ").unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn a_high_score_without_the_facts_behind_it_is_lowered_and_says_why() {
        let mut talked_into_it = valid();
        for field in ["budget_min_inr", "budget_max_inr", "property_type", "property_size", "purpose"] {
            talked_into_it[field] = Value::Null;
        }
        talked_into_it["preferred_locations"] = json!([]);
        talked_into_it["timeline"] = json!("unknown");
        talked_into_it["lead_score"] = json!(100);
        talked_into_it["conversion_probability"] = json!(95);
        let insight = Insight::parse(&talked_into_it.to_string()).unwrap();
        assert_eq!((insight.lead_score, insight.conversion_probability), (30, 30));
        assert_eq!(
            insight.score_capped.as_deref(),
            Some(
                "lead_score 100 and conversion_probability 95 lowered to at most 30: \
                 the call names no budget, timeline, location, property or purpose"
            )
        );

        talked_into_it["preferred_locations"] = json!(["Whitefield"]);
        let located = Insight::parse(&talked_into_it.to_string()).unwrap();
        assert_eq!((located.lead_score, located.conversion_probability), (60, 60));

        talked_into_it["timeline"] = json!("immediate");
        let ready = Insight::parse(&talked_into_it.to_string()).unwrap();
        assert_eq!((ready.lead_score, ready.score_capped), (100, None));
    }

    #[test]
    fn the_model_cannot_write_our_note() {
        let insight = Insight::parse(&with("score_capped", json!("all good"))).unwrap();
        assert_eq!(insight.score_capped, None);
    }

    #[test]
    fn schema_requires_every_property_and_allows_no_others() {
        let schema = Insight::schema();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(schema["required"].as_array().unwrap().len(), properties.len());
        assert_eq!(schema["additionalProperties"], false);
        assert!(Insight::parse(&valid().to_string()).is_ok());
        for key in properties.keys() {
            assert!(valid().get(key).is_some(), "{key} missing from the example");
        }
    }

    #[test]
    fn nullable_enums_take_the_documented_any_of_form() {
        let purpose = &Insight::schema()["properties"]["purpose"];
        assert_eq!(purpose["anyOf"][0], json!({ "type": "string", "enum": ["end_use", "investment"] }));
        assert_eq!(purpose["anyOf"][1], json!({ "type": "null" }));
        let schema = Insight::schema().to_string();
        assert!(!schema.contains("null]"), "no null inside an enum: {schema}");
    }
}
