//! Who gets what: each consumer, the events it subscribes to, and the part
//! of the shop it is for (`consumers.<name>.stores`, `websites`, `states`,
//! `own_statuses`). The ledger asks it whenever it creates rows, so the
//! relay, the change scan, the import and a backfill give a consumer the
//! same orders.
//!
//! An order not for a consumer gets no row for it at all — not its
//! placement, and then none of its later events: an event's rows go to the
//! subscribers of placements that hold the order's placement, and to
//! subscribers of later events only when the order is of their stores.

use std::collections::{HashMap, HashSet};

use crate::{config::ConsumerSettings, message::Event};

/// One consumer's part of the shop; `None` means no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Store ids, with the websites' stores resolved into them.
    pub stores: Option<HashSet<u16>>,
    pub states: Option<HashSet<String>>,
    /// Statuses the consumer writes itself: not sent back as `status_changed`.
    pub own_statuses: HashSet<String>,
}

/// Each consumer with the events it gets and its [`Scope`], in `names` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    consumers: Vec<(String, HashSet<Event>, Scope)>,
}

impl Audience {
    /// From the settings, with `website_stores` the store ids of each
    /// website code some consumer names (see [`Audience::websites`]).
    pub fn new(settings: &ConsumerSettings, website_stores: &HashMap<String, Vec<u16>>) -> Self {
        let consumers = settings
            .names
            .iter()
            .map(|name| {
                let o = settings.options(name);
                let mut stores: HashSet<u16> = o.stores.iter().copied().collect();
                for w in &o.websites {
                    stores.extend(website_stores.get(w).into_iter().flatten().copied());
                }
                let scope = Scope {
                    // A website with no stores leaves the consumer nothing,
                    // never everything.
                    stores: (!o.stores.is_empty() || !o.websites.is_empty()).then_some(stores),
                    states: (!o.states.is_empty()).then(|| o.states.iter().cloned().collect()),
                    own_statuses: o.own_statuses.iter().cloned().collect(),
                };
                (
                    name.clone(),
                    settings.events(name).into_iter().collect(),
                    scope,
                )
            })
            .collect();
        Self { consumers }
    }

    /// Every consumer gets every order, each the events given; for tests and
    /// tools that record for named consumers.
    pub fn everyone(consumers: &[(&str, &[Event])]) -> Self {
        Self {
            consumers: consumers
                .iter()
                .map(|(c, events)| {
                    (
                        (*c).to_owned(),
                        events.iter().copied().collect(),
                        Scope::default(),
                    )
                })
                .collect(),
        }
    }

    /// Only these consumers (in this order), as they are configured.
    pub fn only(&self, names: &[String]) -> Self {
        Self {
            consumers: names
                .iter()
                .filter_map(|n| self.consumers.iter().find(|(c, ..)| c == n).cloned())
                .collect(),
        }
    }

    /// The website codes the settings name, to resolve before [`Audience::new`].
    pub fn websites(settings: &ConsumerSettings) -> Vec<String> {
        let mut all: Vec<String> = settings
            .names
            .iter()
            .flat_map(|n| settings.options(n).websites.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The consumers subscribed to `event`, in `names` order.
    pub fn subscribers(&self, event: Event) -> impl Iterator<Item = &str> {
        self.consumers
            .iter()
            .filter(move |(_, events, _)| events.contains(&event))
            .map(|(c, ..)| c.as_str())
    }

    /// Whether `consumer` subscribes to `event`.
    pub fn gets(&self, consumer: &str, event: Event) -> bool {
        self.consumers
            .iter()
            .any(|(c, events, _)| c == consumer && events.contains(&event))
    }

    /// Whether any consumer subscribes to `event`.
    pub fn wants(&self, event: Event) -> bool {
        self.subscribers(event).next().is_some()
    }

    fn scope(&self, consumer: &str) -> Option<&Scope> {
        self.consumers
            .iter()
            .find(|(c, ..)| c == consumer)
            .map(|(.., s)| s)
    }

    /// Whether an order of `store` is for `consumer` (an order whose store
    /// is unknown is not for a consumer of some stores only).
    pub fn takes_store(&self, consumer: &str, store: Option<u16>) -> bool {
        match self.scope(consumer).and_then(|s| s.stores.as_ref()) {
            None => true,
            Some(stores) => store.is_some_and(|s| stores.contains(&s)),
        }
    }

    /// Whether an order whose `placed` goes in `state` is for `consumer`.
    pub fn takes_state(&self, consumer: &str, state: Option<&str>) -> bool {
        match self.scope(consumer).and_then(|s| s.states.as_ref()) {
            None => true,
            Some(states) => state.is_some_and(|s| states.contains(s)),
        }
    }

    /// Whether a change to `status` is one `consumer` made itself.
    pub fn is_own_status(&self, consumer: &str, status: Option<&str>) -> bool {
        status.is_some_and(|st| {
            self.scope(consumer)
                .is_some_and(|s| s.own_statuses.contains(st))
        })
    }

    /// Whether some consumer gets only some states (a held order's release
    /// then has to ask [`Audience::takes_state`]).
    pub fn has_state_scopes(&self) -> bool {
        self.consumers.iter().any(|(.., s)| s.states.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> ConsumerSettings {
        let mut s = crate::config::load_with_env(None, std::iter::empty::<(String, String)>())
            .unwrap()
            .consumers;
        let parsed: ConsumerSettings = ::config::Config::builder()
            .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        s.names = parsed.names;
        s.each = parsed.each;
        s
    }

    #[test]
    fn a_consumer_of_some_stores_gets_only_their_orders_and_websites_add_their_stores() {
        let s = settings(
            "names = [\"erp\", \"wms\", \"crm\"]\npull = []\n\
             [wms]\nstores = [2]\nwebsites = [\"eu\"]\n\
             [crm]\nwebsites = [\"gone\"]\n",
        );
        let sites = HashMap::from([("eu".to_owned(), vec![5, 6])]);
        let a = Audience::new(&s, &sites);
        assert!(a.takes_store("erp", Some(1)) && a.takes_store("erp", None));
        assert!(a.takes_store("wms", Some(2)) && a.takes_store("wms", Some(6)));
        assert!(!a.takes_store("wms", Some(1)) && !a.takes_store("wms", None));
        // A website without stores gives nothing, not everything.
        assert!(!a.takes_store("crm", Some(1)));
        assert_eq!(Audience::websites(&s), ["eu", "gone"]);
    }

    #[test]
    fn states_and_own_statuses_are_per_consumer() {
        let s = settings(
            "names = [\"erp\", \"wms\"]\npull = []\n\
             [erp]\nown_statuses = [\"exported\"]\n\
             [wms]\nstates = [\"processing\"]\nevents = [\"placed\", \"shipped\"]\n",
        );
        let a = Audience::new(&s, &HashMap::new());
        assert!(a.takes_state("erp", Some("pending_payment")));
        assert!(a.takes_state("wms", Some("processing")));
        assert!(!a.takes_state("wms", Some("new")) && !a.takes_state("wms", None));
        assert!(a.is_own_status("erp", Some("exported")));
        assert!(!a.is_own_status("wms", Some("exported")));
        assert_eq!(a.subscribers(Event::Shipped).collect::<Vec<_>>(), ["wms"]);
        assert_eq!(
            a.subscribers(Event::Placed).collect::<Vec<_>>(),
            ["erp", "wms"]
        );
        assert!(a.has_state_scopes());
    }
}
