//! CRMArena domain coverage: the share of each domain's keyword lexicon that appears in the answer.
//!
//! The lexicons are ours (docs/metrics.md lists them): terms an answer about that side of a CRM uses, drawn
//! from the CRMArena task families (service: case routing, handle time, transfers, knowledge QA; sales:
//! leads, opportunities, quotes, BANT; support: issues, products, policies; retention: churn, renewals).
//! Matching: the answer is lowercased and cut into `[a-z0-9]+` tokens; a keyword (one or more tokens)
//! counts when its tokens occur consecutively, each token also matching with a plural `s`/`es` suffix.
//! `overall_keyword_coverage` is the share of the union of all lexicons.

use std::collections::BTreeSet;

pub const CUSTOMER_SERVICE: &[&str] = &[
    "case", "agent", "customer", "contact", "account", "routing", "handle time", "transfer", "queue", "escalation",
    "response", "resolution", "priority", "status", "closed", "owner", "live chat", "email", "satisfaction", "policy",
];

pub const SALES: &[&str] = &[
    "lead", "opportunity", "quote", "pricebook", "product", "order", "deal", "pipeline", "stage", "forecast",
    "revenue", "discount", "budget", "authority", "need", "timeline", "conversion", "sales cycle", "territory", "contract",
];

pub const SUPPORT: &[&str] = &[
    "issue", "knowledge article", "troubleshoot", "defect", "warranty", "return", "refund", "replacement", "repair",
    "manual", "instructions", "update", "configuration", "error", "solution", "fix", "support", "ticket", "faq", "guide",
];

pub const RETENTION: &[&str] = &[
    "retention", "churn", "renewal", "loyalty", "subscription", "cancel", "follow up", "feedback", "survey",
    "satisfaction", "engagement", "offer", "incentive", "relationship", "repeat", "lifetime value", "win back",
    "upgrade", "complaint", "apology",
];

/// The domains in the order of their metric names.
pub const DOMAINS: &[(&str, &[&str])] = &[
    ("customer_service_coverage", CUSTOMER_SERVICE),
    ("sales_coverage", SALES),
    ("support_coverage", SUPPORT),
    ("retention_coverage", RETENTION),
];

fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn token_matches(got: &str, want: &str) -> bool {
    got == want || got.strip_prefix(want).is_some_and(|rest| rest == "s" || rest == "es")
}

fn contains_keyword(answer: &[String], keyword: &str) -> bool {
    let kw = tokens(keyword);
    !kw.is_empty() && answer.windows(kw.len()).any(|w| w.iter().zip(&kw).all(|(g, k)| token_matches(g, k)))
}

/// (metric name, coverage) for the four domains and `overall_keyword_coverage`.
pub fn coverage(answer: &str) -> Vec<(&'static str, f64)> {
    let toks = tokens(answer);
    let mut out = Vec::with_capacity(DOMAINS.len() + 1);
    for (name, lexicon) in DOMAINS {
        let hit = lexicon.iter().filter(|k| contains_keyword(&toks, k)).count();
        out.push((*name, hit as f64 / lexicon.len() as f64));
    }
    let all: BTreeSet<&str> = DOMAINS.iter().flat_map(|(_, l)| l.iter().copied()).collect();
    let hit = all.iter().filter(|k| contains_keyword(&toks, k)).count();
    out.push(("overall_keyword_coverage", hit as f64 / all.len() as f64));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_whole_tokens_phrases_and_plurals() {
        let c: std::collections::BTreeMap<_, _> =
            coverage("The agents reviewed two Cases; average handle-time fell. Casework is not a case.").into_iter().collect();
        // agent(s), case(s), handle time => 3 of 20 service terms; "casework" does not count as "case".
        assert_eq!(c["customer_service_coverage"], 3.0 / 20.0);
        assert_eq!(c["sales_coverage"], 0.0);
        let all: BTreeSet<&str> = DOMAINS.iter().flat_map(|(_, l)| l.iter().copied()).collect();
        assert_eq!(c["overall_keyword_coverage"], 3.0 / all.len() as f64);
        assert!(coverage("").iter().all(|(_, v)| *v == 0.0));
    }
}
