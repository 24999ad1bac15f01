//! The simulated calls' catalogue: what each caller says (English and
//! Hinglish real-estate enquiries, complaints, a wrong number), which IVR key
//! they press, how long the call lasts, and what a model would extract. A
//! script travels inside its recording's bytes, so the simulated OpenAI
//! server answers for the very call it is asked about.

use serde_json::{Value, json};

/// One caller's conversation, start to finish.
#[derive(Debug)]
pub struct Script {
    /// Stable id, carried in the recording bytes.
    pub id: &'static str,
    /// The IVR key pressed: `1` sales, `2` support; `None` waits out the menu.
    pub ivr_digit: Option<&'static str>,
    /// As the provider reports it (`RecordingDuration`); short calls are not transcribed.
    pub duration_secs: i32,
    /// Whisper's language name for the call.
    pub language: &'static str,
    /// The turns, caller and agent alternating.
    pub turns: &'static [&'static str],
    insight: fn() -> Value,
}

impl Script {
    /// The transcript as a speech-to-text model returns it.
    pub fn transcript(&self) -> String {
        self.turns.join(" ")
    }

    /// The model's answer, valid against `insight::Insight`.
    pub fn insight(&self) -> Value {
        (self.insight)()
    }

    /// Fake mp3 bytes that name this script: an MPEG frame header, the
    /// marker, filler; about 1 KiB per second of call.
    pub fn recording(&self) -> Vec<u8> {
        let len = self.duration_secs.unsigned_abs() as usize * 1024;
        let mut body = vec![0xFF, 0xFB, 0x90, 0x64];
        body.extend_from_slice(format!("{MARKER}{};", self.id).as_bytes());
        let filler = len.saturating_sub(body.len());
        body.extend((0..filler).map(|i| (i % 251) as u8));
        body
    }
}

const MARKER: &str = "SWITCHBOARD-SIM-SCRIPT:";

/// What a customer says when a scheduled follow-up call reaches them.
pub const FOLLOW_UP: &str = "follow-up-site-visit";

pub fn by_id(id: &str) -> Option<&'static Script> {
    CATALOGUE.iter().find(|s| s.id == id)
}

/// The script whose recording is somewhere in `bytes` (a multipart upload, say).
pub fn in_audio(bytes: &[u8]) -> Option<&'static Script> {
    let marker = MARKER.as_bytes();
    let start = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let end = bytes[start..].iter().position(|b| *b == b';')? + start;
    by_id(std::str::from_utf8(&bytes[start..end]).ok()?)
}

/// The script whose transcript `analyze` sends as `message` (delimited).
pub fn by_transcript_message(message: &str) -> Option<&'static Script> {
    CATALOGUE.iter().find(|s| switchboard_jobs::analyze::transcript_message(&s.transcript()) == message)
}

/// The `n`-th call's script: the catalogue in a fixed, mixed order.
pub fn for_call(n: usize) -> &'static Script {
    const ORDER: [usize; 10] = [0, 1, 3, 2, 5, 0, 4, 6, 7, 1];
    &CATALOGUE[ORDER[n % ORDER.len()]]
}

pub static CATALOGUE: [Script; 9] = [
    Script {
        id: "whitefield-3bhk-hinglish",
        ivr_digit: Some("1"),
        duration_secs: 184,
        language: "hindi",
        turns: &[
            "Hello, main Rahul bol raha hoon.",
            "Namaste Rahul ji, Prestige Homes se Asha bol rahi hoon, boliye.",
            "Mujhe Whitefield mein ek 3BHK flat chahiye, budget around 80 lakh to 1.2 crore.",
            "Ready to move chahiye ya under construction bhi chalega?",
            "Ready to move better hai. Home loan bhi lagega. Next month tak decide karna hai, site visit book kar dijiye.",
            "Bilkul, is Saturday 11 baje site visit book kar deti hoon.",
        ],
        insight: || {
            json!({
                "customer_name": "Rahul", "customer_email": null,
                "budget_min_inr": 8_000_000, "budget_max_inr": 12_000_000,
                "preferred_locations": ["Whitefield"], "property_type": "apartment", "property_size": "3BHK",
                "purpose": "end_use", "timeline": "1-3 months", "financing_needed": true,
                "sentiment": "positive", "sentiment_score": 0.7,
                "intents": ["buy", "site visit"], "key_topics": ["3BHK", "ready to move", "home loan"],
                "pain_points": [], "objections": [],
                "summary": "Rahul wants a ready-to-move 3BHK in Whitefield for 80 lakh to 1.2 crore with a home loan and will decide within a month; site visit on Saturday.",
                "lead_score": 86, "conversion_probability": 62,
                "next_best_action": "Confirm Saturday's Whitefield site visit and share loan partner options", "next_action_due_in_days": 1
            })
        },
    },
    Script {
        id: "sarjapur-plot-investor",
        ivr_digit: Some("1"),
        duration_secs: 142,
        language: "english",
        turns: &[
            "Hi, I saw your ad for plots on Sarjapur Road.",
            "Yes sir, we have BMRDA approved plots from 1200 square feet. Is this for investment?",
            "Purely investment. I can put in about 50 lakh, maybe 60. What appreciation are you seeing?",
            "About 12 to 15 percent a year on that corridor.",
            "Okay. Send me the layout and the price sheet. I'm comparing with two other projects, will decide in three or four months.",
        ],
        insight: || {
            json!({
                "customer_name": null, "customer_email": null,
                "budget_min_inr": 5_000_000, "budget_max_inr": 6_000_000,
                "preferred_locations": ["Sarjapur Road"], "property_type": "plot", "property_size": "1200 sq ft",
                "purpose": "investment", "timeline": "3-6 months", "financing_needed": null,
                "sentiment": "neutral", "sentiment_score": 0.2,
                "intents": ["buy", "price enquiry"], "key_topics": ["plots", "appreciation", "BMRDA approval"],
                "pain_points": [], "objections": ["comparing with other projects"],
                "summary": "Investor looking at 1200 sq ft plots on Sarjapur Road for 50-60 lakh, comparing projects, deciding in 3-4 months.",
                "lead_score": 64, "conversion_probability": 35,
                "next_best_action": "Email the layout and price sheet with appreciation data", "next_action_due_in_days": 0
            })
        },
    },
    Script {
        id: "possession-delay-complaint",
        ivr_digit: Some("2"),
        duration_secs: 121,
        language: "english",
        turns: &[
            "I booked a 2BHK in your Hebbal tower in 2023 and possession was promised this March. It's November now.",
            "I'm sorry ma'am, the occupancy certificate is pending with the authority.",
            "That's what I heard in June too. I'm paying EMI and rent together. I want a written date or I'm going to RERA.",
            "I'll escalate this to the project head today and get you a written update.",
        ],
        insight: || {
            json!({
                "customer_name": null, "customer_email": null,
                "budget_min_inr": null, "budget_max_inr": null,
                "preferred_locations": ["Hebbal"], "property_type": "apartment", "property_size": "2BHK",
                "purpose": "end_use", "timeline": "unknown", "financing_needed": true,
                "sentiment": "negative", "sentiment_score": -0.8,
                "intents": ["complaint", "possession date"], "key_topics": ["possession delay", "occupancy certificate", "RERA"],
                "pain_points": ["paying EMI and rent together", "repeated delays"], "objections": [],
                "summary": "Existing buyer of a Hebbal 2BHK complains that possession is 8 months late and threatens a RERA complaint without a written date.",
                "lead_score": 12, "conversion_probability": 5,
                "next_best_action": "Escalate to the project head and send a written possession date", "next_action_due_in_days": 0
            })
        },
    },
    Script {
        id: "electronic-city-2bhk-hinglish",
        ivr_digit: Some("1"),
        duration_secs: 96,
        language: "hindi",
        turns: &[
            "Haan ji, aapka Electronic City wala project, 2BHK ka rate kya hai?",
            "Sir 2BHK 58 lakh se start hai, 1150 square feet.",
            "Thoda zyada hai, mera budget 45 se 50 lakh hai. Wife ke saath discuss karke batata hoon, shayad six months baad.",
            "Koi baat nahi sir, main aapko brochure WhatsApp kar deta hoon.",
        ],
        insight: || {
            json!({
                "customer_name": null, "customer_email": null,
                "budget_min_inr": 4_500_000, "budget_max_inr": 5_000_000,
                "preferred_locations": ["Electronic City"], "property_type": "apartment", "property_size": "2BHK",
                "purpose": "end_use", "timeline": "6+ months", "financing_needed": null,
                "sentiment": "mixed", "sentiment_score": -0.1,
                "intents": ["price enquiry"], "key_topics": ["2BHK", "pricing"],
                "pain_points": ["price above budget"], "objections": ["price too high", "needs to consult spouse"],
                "summary": "Caller asked the 2BHK price in Electronic City; 58 lakh is above his 45-50 lakh budget; may revisit in six months.",
                "lead_score": 38, "conversion_probability": 15,
                "next_best_action": "WhatsApp the brochure and note the smaller 2BHK units", "next_action_due_in_days": 3
            })
        },
    },
    Script {
        id: "wrong-number",
        ivr_digit: None,
        duration_secs: 14,
        language: "hindi",
        turns: &["Hello? Sharma ji ka number hai? Oh, sorry, galat number lag gaya."],
        insight: || {
            json!({
                "customer_name": null, "customer_email": null, "budget_min_inr": null, "budget_max_inr": null,
                "preferred_locations": [], "property_type": null, "property_size": null, "purpose": null,
                "timeline": "unknown", "financing_needed": null, "sentiment": "neutral", "sentiment_score": 0.0,
                "intents": ["wrong number"], "key_topics": [], "pain_points": [], "objections": [],
                "summary": "Wrong number.", "lead_score": 0, "conversion_probability": 0,
                "next_best_action": "No follow-up needed", "next_action_due_in_days": null
            })
        },
    },
    Script {
        id: "office-space-koramangala",
        ivr_digit: Some("1"),
        duration_secs: 233,
        language: "english",
        turns: &[
            "Good morning, this is Meera from Finch Labs. We need office space in Koramangala for about 80 seats.",
            "We have a Grade A floor of 9000 square feet ready for fit-outs. Are you looking to lease or buy?",
            "Buy, if the numbers work. Our board approved up to 9 crore. We need to move in within the next two months.",
            "That fits. I can hold the floor for a week and arrange a visit tomorrow.",
            "Tomorrow at four works. Please send the details to meera@finchlabs.in.",
        ],
        insight: || {
            json!({
                "customer_name": "Meera", "customer_email": "meera@finchlabs.in",
                "budget_min_inr": null, "budget_max_inr": 90_000_000,
                "preferred_locations": ["Koramangala"], "property_type": "commercial office", "property_size": "9000 sq ft",
                "purpose": "end_use", "timeline": "immediate", "financing_needed": false,
                "sentiment": "positive", "sentiment_score": 0.8,
                "intents": ["buy", "site visit"], "key_topics": ["office space", "80 seats", "Grade A"],
                "pain_points": ["needs to move within two months"], "objections": [],
                "summary": "Meera (Finch Labs) wants to buy a ~9000 sq ft Koramangala office for 80 seats, up to 9 crore, moving within two months; visit tomorrow 4 pm.",
                "lead_score": 91, "conversion_probability": 70,
                "next_best_action": "Send floor details to Meera and confirm tomorrow's 4 pm visit", "next_action_due_in_days": 0
            })
        },
    },
    Script {
        id: "maintenance-complaint-hinglish",
        ivr_digit: Some("2"),
        duration_secs: 77,
        language: "hindi",
        turns: &[
            "Main Tower B, flat 1204 se bol rahi hoon. Teen din se lift band hai aur maintenance wale phone nahi utha rahe.",
            "Maaf kijiye madam, main abhi facility team ko ticket raise karti hoon.",
            "Please jaldi kijiye, ghar mein senior citizens hain.",
        ],
        insight: || {
            json!({
                "customer_name": null, "customer_email": null, "budget_min_inr": null, "budget_max_inr": null,
                "preferred_locations": [], "property_type": "apartment", "property_size": null, "purpose": null,
                "timeline": "unknown", "financing_needed": null, "sentiment": "negative", "sentiment_score": -0.6,
                "intents": ["complaint", "maintenance"], "key_topics": ["lift outage", "facility management"],
                "pain_points": ["lift down for three days", "senior citizens at home", "no response from maintenance"],
                "objections": [],
                "summary": "Resident of Tower B flat 1204 reports the lift has been down for three days with no response from maintenance.",
                "lead_score": 5, "conversion_probability": 0,
                "next_best_action": "Raise an urgent facility ticket and call the resident back with an ETA", "next_action_due_in_days": 0
            })
        },
    },
    Script {
        id: "villa-nri-enquiry",
        ivr_digit: Some("1"),
        duration_secs: 168,
        language: "english",
        turns: &[
            "Hi, I'm Arjun, calling from Dubai. I'm looking for a 4BHK villa near Devanahalli for my parents.",
            "We have villas from 2.8 crore in our gated community there. Would you need a loan?",
            "Yes, an NRI home loan, around 70 percent. Budget up to 3.5 crore. I'm in Bangalore in January and want to close then.",
            "I'll set up a video walkthrough this week and a visit when you land.",
        ],
        insight: || {
            json!({
                "customer_name": "Arjun", "customer_email": null,
                "budget_min_inr": 28_000_000, "budget_max_inr": 35_000_000,
                "preferred_locations": ["Devanahalli"], "property_type": "villa", "property_size": "4BHK",
                "purpose": "end_use", "timeline": "1-3 months", "financing_needed": true,
                "sentiment": "positive", "sentiment_score": 0.6,
                "intents": ["buy", "video walkthrough"], "key_topics": ["NRI home loan", "gated community", "villa"],
                "pain_points": ["buying from abroad"], "objections": [],
                "summary": "Arjun, an NRI in Dubai, wants a 4BHK villa near Devanahalli for his parents, up to 3.5 crore with a 70% NRI loan, closing in January.",
                "lead_score": 78, "conversion_probability": 48,
                "next_best_action": "Schedule a video walkthrough of the Devanahalli villas this week", "next_action_due_in_days": 2
            })
        },
    },
    Script {
        id: FOLLOW_UP,
        ivr_digit: None,
        duration_secs: 88,
        language: "english",
        turns: &[
            "Hi, this is Asha from Prestige Homes, following up on your enquiry. Is this a good time?",
            "Yes, go ahead. I went through the brochure you sent.",
            "Great. Shall I book the site visit for this Saturday at 11?",
            "Saturday works. My budget is still the same, and I'd like the loan partner to join us if possible.",
            "Done, I'll bring the loan officer. See you on Saturday.",
        ],
        insight: || {
            json!({
                "customer_name": null, "customer_email": null, "budget_min_inr": null, "budget_max_inr": null,
                "preferred_locations": [], "property_type": null, "property_size": null, "purpose": null,
                "timeline": "1-3 months", "financing_needed": true, "sentiment": "positive", "sentiment_score": 0.6,
                "intents": ["site visit"], "key_topics": ["site visit", "home loan"], "pain_points": [], "objections": [],
                "summary": "Follow-up call: the customer confirmed a site visit on Saturday at 11 and wants the loan partner there.",
                "lead_score": 88, "conversion_probability": 65,
                "next_best_action": "Bring the loan officer to Saturday's site visit", "next_action_due_in_days": 2
            })
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_jobs::insight::Insight;

    #[test]
    fn every_scripted_answer_passes_the_analyzers_validation() {
        for script in &CATALOGUE {
            Insight::parse(&script.insight().to_string()).unwrap_or_else(|e| panic!("{}: {e}", script.id));
        }
    }

    #[test]
    fn a_recording_names_its_script_and_transcripts_find_theirs() {
        for script in &CATALOGUE {
            assert_eq!(in_audio(&script.recording()).map(|s| s.id), Some(script.id));
            let message = switchboard_jobs::analyze::transcript_message(&script.transcript());
            assert_eq!(by_transcript_message(&message).map(|s| s.id), Some(script.id));
        }
        assert!(in_audio(b"no marker here").is_none());
    }
}
