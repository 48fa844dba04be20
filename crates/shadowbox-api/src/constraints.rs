//! The constraints the server enforces, as the OpenAPI document states
//! them: each schema here is built from the constant of the rule that
//! enforces it (never a copy), so generated clients and validators accept
//! exactly what the server does.
//!
//! - [`Identifier`]: `tenant_id` and `device_id` (`shadowbox_core::id`);
//! - [`limit`], [`device_cursor`], [`outbox_cursor`], [`history_cursor`]
//!   and [`rollout_cursor`]: a list's page
//!   (`crate::pagination`);
//! - [`TagSet`] and [`TagFilter`]: device tags (`shadowbox_core::tags`);
//! - [`rollout_selector`], [`waves`], [`fraction`] and [`duration`]: a
//!   rollout's body (`shadowbox_core::rollout`, `shadowbox_core::duration`);
//! - [`IfMatchHeader`]: the `If-Match` form (`crate::if_match`);
//! - [`IdempotencyKeyHeader`]: the `Idempotency-Key` form
//!   (`shadowbox_core::idempotency`);
//! - [`LastEventIdHeader`]: the `Last-Event-ID` form
//!   (`shadowbox_core::event`);
//! - [`DesiredDocument`] and [`add_document_value`]: a desired document
//!   holds no NUL character (`shadowbox_core::document`);
//! - [`state_body_limits`]: the body and document limits, which are
//!   settings, written into the served document when the router is built.

use std::borrow::Cow;

use shadowbox_core::event::{EVENT_ID_PATTERN, MAX_EVENT_ID_LEN};
use shadowbox_core::id::{ID_PATTERN, MAX_ID_LEN};
use shadowbox_core::idempotency::{self, KEY_PATTERN, MAX_KEY_LEN};
use shadowbox_core::rollout::{MAX_SELECTOR_DEVICE_IDS, MAX_WAVES};
use shadowbox_core::tags::{MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN, MAX_TAGS, TAG_KEY_CLASS};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Object, OpenApi, Ref, RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::if_match::{ANY, TAG_PATTERN};
use crate::pagination::{CursorKind, DEFAULT_LIMIT, MAX_LIMIT};
use crate::settings::ApiSettings;

/// A tenant or device id: 1 to `MAX_ID_LEN` characters of
/// `A-Z a-z 0-9 _ - . :` (400 otherwise).
pub(crate) struct Identifier;

impl PartialSchema for Identifier {
    fn schema() -> RefOr<Schema> {
        identifier().into()
    }
}

/// [`Identifier`]'s schema, for a field (`schema_with`).
pub(crate) fn identifier() -> Object {
    ObjectBuilder::new()
        .description(Some(format!(
            "1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 _ - . :"
        )))
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(ID_PATTERN))
        .build()
}

impl ToSchema for Identifier {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Identifier")
    }
}

/// The schema of a list's `limit`: 1 to `MAX_LIMIT` (400 otherwise).
pub(crate) fn limit() -> Object {
    ObjectBuilder::new()
        .description(Some(format!(
            "page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
        )))
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(MAX_LIMIT))
        .build()
}

/// The schema of a `kind` list's `cursor`: exactly the cursors that list
/// takes (400 otherwise).
fn cursor(kind: CursorKind) -> Object {
    ObjectBuilder::new()
        .description(Some("`next_cursor` of the previous page"))
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(kind.max_len()))
        .pattern(Some(kind.pattern()))
        .build()
}

/// The `cursor` of the device list.
pub(crate) fn device_cursor() -> Object {
    cursor(CursorKind::Devices)
}

/// The `cursor` of the outbox lists (a tenant's, a device's deliveries).
pub(crate) fn outbox_cursor() -> Object {
    cursor(CursorKind::Outbox)
}

/// The `cursor` of a device's history.
pub(crate) fn history_cursor() -> Object {
    cursor(CursorKind::History)
}

/// The `cursor` of the rollout list.
pub(crate) fn rollout_cursor() -> Object {
    cursor(CursorKind::Rollouts)
}

/// Device tags: at most `MAX_TAGS`, keys of `TAG_KEY_CLASS`, values
/// without NUL (422 otherwise).
pub(crate) struct TagSet;

impl PartialSchema for TagSet {
    fn schema() -> RefOr<Schema> {
        tags().into()
    }
}

impl ToSchema for TagSet {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Tags")
    }
}

/// [`TagSet`]'s schema, for a field (`schema_with`).
pub(crate) fn tags() -> Object {
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_TAG_KEY_LEN))
        .pattern(Some(format!("^{TAG_KEY_CLASS}+$")));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_TAG_VALUE_LEN))
        .pattern(Some(NO_NUL));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "at most {MAX_TAGS} tags; keys 1 to {MAX_TAG_KEY_LEN} characters of a-z 0-9 _ . - /, \
             string values of 0 to {MAX_TAG_VALUE_LEN} characters"
        )))
        .max_properties(Some(MAX_TAGS))
        .property_names(Some(key))
        .additional_properties(Some(value))
        .build()
}

/// The repeatable `tag=key:value` filter of the device list.
pub(crate) struct TagFilter;

impl IntoParams for TagFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let filter = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^{TAG_KEY_CLASS}{{1,{MAX_TAG_KEY_LEN}}}:[^\\u0000]{{0,{MAX_TAG_VALUE_LEN}}}$"
            )));
        vec![
            ParameterBuilder::new()
                .name("tag")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "`key:value`: only devices having this tag; repeatable (a key with two values lists nothing), \
                     all must match",
                ))
                .style(Some(ParameterStyle::Form))
                .explode(Some(true))
                .schema(Some(
                    ArrayBuilder::new().items(filter).max_items(Some(MAX_TAGS)),
                ))
                .build(),
        ]
    }
}

/// A rollout's selector: exactly one of `device_ids` (1 to
/// `MAX_SELECTOR_DEVICE_IDS` identifiers), `tags` (at least one) and
/// `all` (`true`), 422 otherwise.
pub(crate) fn rollout_selector() -> RefOr<Schema> {
    let only = |name: &str, schema: RefOr<Schema>| {
        ObjectBuilder::new()
            .property(name, schema)
            .required(name)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
    };
    let device_ids = ArrayBuilder::new()
        .items(identifier())
        .min_items(Some(1))
        .max_items(Some(MAX_SELECTOR_DEVICE_IDS));
    let mut tags = tags();
    tags.min_properties = Some(1);
    let all = ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]));
    OneOfBuilder::new()
        .description(Some(format!(
            "exactly one of `device_ids` (at most {MAX_SELECTOR_DEVICE_IDS}), `tags` \
             (devices having every tag) and `all` (`true`: every active device)"
        )))
        .item(only("device_ids", device_ids.into()))
        .item(only("tags", tags.into()))
        .item(only("all", all.into()))
        .into()
}

/// A rollout's `waves`, or null: 1 to `MAX_WAVES` fractions in (0, 1];
/// that they strictly increase and end in 1.0 is a rule no schema
/// keyword states (422 otherwise).
pub(crate) fn waves() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some(format!(
            "1 to {MAX_WAVES} strictly increasing cumulative fractions in (0, 1], \
             the last one 1.0 (default [1.0])"
        )))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0))
                .maximum(Some(1)),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_WAVES))
}

/// A fraction in [0, 1], or null (422 otherwise).
pub(crate) fn fraction() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(1))
        .build()
}

/// A duration longer than zero as `shadowbox_core::duration` reads it, or
/// null. The server takes up to `36500d`; the pattern states a range
/// inside it (every value it matches is accepted).
pub(crate) fn duration() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(
            r"^([1-9][0-9]{0,11}ms|[1-9][0-9]{0,8}s|[1-9][0-9]{0,6}m|[1-9][0-9]{0,4}h|[1-9][0-9]{0,3}d)$",
        ))
        .examples(["10m"])
        .build()
}

/// A header parameter, optional.
fn header(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The `If-Match` header of a desired write.
pub(crate) struct IfMatchHeader;

impl IntoParams for IfMatchHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header(
            "If-Match",
            "`\"<desired_version>\"` (the device's ETag): write only if it is current \
             (412 otherwise); `*`: no condition; a weak tag `W/\"N\"` never matches (412)",
            // `*` apart: a pattern alternative holding it makes some
            // generators (schemathesis) draw values outside the pattern.
            AnyOfBuilder::new()
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([ANY])),
                )
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(TAG_PATTERN)),
                ),
        )]
    }
}

/// The `Idempotency-Key` header of a write.
pub(crate) struct IdempotencyKeyHeader;

/// `Last-Event-ID`: an event id the stream gave out (400 otherwise).
pub(crate) struct LastEventIdHeader;

impl IntoParams for LastEventIdHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header(
            "Last-Event-ID",
            "resume after this event id, within the resume window \
             (SHADOWBOX_EVENTS_RETENTION): every later event, none twice",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_EVENT_ID_LEN))
                .pattern(Some(EVENT_ID_PATTERN)),
        )]
    }
}

impl IntoParams for IdempotencyKeyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header(
            idempotency::HEADER,
            "1-255 visible ASCII characters, per tenant: a repeat with the same key, \
             method, path and body within 24 hours answers the first answer again (with \
             `Idempotent-Replayed: true`) and writes nothing; the same key with another \
             request answers 422",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_LEN))
                .pattern(Some(KEY_PATTERN)),
        )]
    }
}

/// Writes the body and document limits of `settings` into the description
/// of every request body of `openapi`.
pub(crate) fn state_body_limits(openapi: &mut OpenApi, settings: &ApiSettings) {
    let limits = format!(
        "The body is at most {} bytes (413 before it is read). A desired document is at \
         most {} bytes (413) and {} levels deep (422), and holds no NUL character (422).",
        settings.max_body_bytes, settings.limits.max_bytes, settings.limits.max_depth,
    );
    for item in openapi.paths.paths.values_mut() {
        for operation in [&mut item.post, &mut item.put, &mut item.patch]
            .into_iter()
            .flatten()
        {
            if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                body.description = Some(match body.description.take() {
                    Some(description) => format!("{description}. {limits}"),
                    None => limits.clone(),
                });
            }
        }
    }
}

/// A desired document as a request states it: a JSON object whose keys
/// and strings hold no NUL character (PostgreSQL cannot store one: 422).
/// Its size and depth limits are settings ([`state_body_limits`]).
pub(crate) struct DesiredDocument;

/// A string without a NUL character.
const NO_NUL: &str = r"^[^\u0000]*$";

fn without_nul() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NO_NUL))
}

/// A JSON object of [`DocumentValue`]s under keys without NUL.
fn document_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(without_nul()))
        .additional_properties(Some(Ref::from_schema_name(DOCUMENT_VALUE)))
}

impl PartialSchema for DesiredDocument {
    fn schema() -> RefOr<Schema> {
        document_object()
            .description(Some(
                "a JSON object; no key or string holds a NUL character (\\u0000)",
            ))
            .into()
    }
}

impl ToSchema for DesiredDocument {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Document")
    }
}

/// The name of [`document_value`]'s schema among the components.
const DOCUMENT_VALUE: &str = "DocumentValue";

/// Any value inside a [`DesiredDocument`]: one schema of every JSON type
/// whose keywords each apply to their own type. Written as JSON, as
/// utoipa's builders cannot put `items` beside other types; and not as an
/// `anyOf` of one schema per type, which property-based testers mutate
/// into "invalid" values another branch allows.
fn document_value() -> serde_json::Value {
    let value = format!("#/components/schemas/{DOCUMENT_VALUE}");
    serde_json::json!({
        "type": ["null", "boolean", "number", "string", "array", "object"],
        "pattern": NO_NUL,
        "items": {"$ref": value},
        "propertyNames": {"type": "string", "pattern": NO_NUL},
        "additionalProperties": {"$ref": value},
    })
}

/// Adds [`document_value`] to the served document `openapi`.
pub(crate) fn add_document_value(openapi: &mut serde_json::Value) {
    openapi["components"]["schemas"][DOCUMENT_VALUE] = document_value();
}
