//! The `tracing` spans a test's code opened, read back: a layer for a
//! subscriber that keeps each span's name, fields, parent and the spans it
//! follows from, so that tests can assert what was traced (and that no
//! field holds a secret).
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let spans = auth_testkit::spans::SpanLog::default();
//! let subscriber = tracing_subscriber::registry().with(spans.clone());
//! tracing::subscriber::with_default(subscriber, || {
//!     let outer = tracing::info_span!("outer", user = 7);
//!     let _in = outer.enter();
//!     tracing::info_span!("inner", done = tracing::field::Empty).record("done", true);
//! });
//! let inner = spans.named("inner").pop().unwrap();
//! assert_eq!(inner.field("done"), Some("true"));
//! assert_eq!(inner.parent.as_deref(), Some("outer"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span as it was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanRecord {
    /// Its name.
    pub name: String,
    /// Its target.
    pub target: String,
    /// Its fields, as `Debug` text (strings without quotes).
    pub fields: BTreeMap<String, String>,
    /// Its parent's name.
    pub parent: Option<String>,
    /// The names of the spans it follows from.
    pub follows: Vec<String>,
}

impl SpanRecord {
    /// A field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A layer keeping every span opened (see the module docs). Clones share
/// the log.
#[derive(Debug, Clone, Default)]
pub struct SpanLog {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

impl SpanLog {
    /// Every span recorded, in the order they were opened.
    pub fn all(&self) -> Vec<SpanRecord> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The spans named `name`, in the order they were opened.
    pub fn named(&self, name: &str) -> Vec<SpanRecord> {
        self.all().into_iter().filter(|span| span.name == name).collect()
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut SpanRecord)) {
        if let Some(span) = self.spans.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index) {
            change(span);
        }
    }
}

/// Where a span's record is in the log (kept in the span's extensions).
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanLog {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut record = SpanRecord {
            name: attributes.metadata().name().to_owned(),
            target: attributes.metadata().target().to_owned(),
            parent: span.parent().map(|parent| parent.name().to_owned()),
            ..SpanRecord::default()
        };
        attributes.record(&mut Fields(&mut record.fields));
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        span.extensions_mut().insert(Index(spans.len()));
        spans.push(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(index) = span.extensions().get::<Index>().map(|index| index.0) else { return };
        self.update(index, |record| values.record(&mut Fields(&mut record.fields)));
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(followed)) = (ctx.span(id), ctx.span(follows)) else { return };
        let Some(index) = span.extensions().get::<Index>().map(|index| index.0) else { return };
        let name = followed.name().to_owned();
        self.update(index, |record| record.follows.push(name));
    }
}
