//! What the handlers' attributes cannot say: the rules of a key (on every `{key}` parameter),
//! and raw bytes as bytes (a raw PUT's optional body, a raw GET's answer in any media type).

use utoipa::Modify;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Content, RefOr, Required, Schema};

/// The key rules (see `domain::key`) a schema can say: characters, no leading `/`, up to 1024
/// (characters, where the server counts bytes). The rest (segments of at most 255 bytes, not
/// only whitespace, no empty, `.` or `..` segment) answers a documented 400 `invalid_key`.
pub const KEY_PATTERN: &str = "^[^/\\u0000-\\u001F\\u007F-\\u009F\\uFFFE\\uFFFF][^\\u0000-\\u001F\\u007F-\\u009F\\uFFFE\\uFFFF]*$";
/// What a listing prefix may hold: the characters of a key.
pub const PREFIX_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F\\uFFFE\\uFFFF]*$";

pub(super) struct Schemas;

/// Every operation of a path.
pub(super) fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.head,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn key_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::domain::MAX_KEY_BYTES))
        .pattern(Some(KEY_PATTERN))
        .into()
}

fn prefix_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(PREFIX_PATTERN))
        .into()
}

fn bytes_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .into()
}

impl Modify for Schemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    let RefOr::T(parameter) = parameter else {
                        continue;
                    };
                    match parameter.name.as_str() {
                        "key" => parameter.schema = Some(RefOr::T(key_schema())),
                        "prefix" => parameter.schema = Some(RefOr::T(prefix_schema())),
                        _ => {}
                    }
                }
            }
        }
        if let Some(RefOr::T(Schema::Object(put))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("PutRequest"))
            && let Some(RefOr::T(key)) = put.properties.get_mut("key")
        {
            *key = key_schema();
        }
        let Some(item) = openapi.paths.paths.get_mut("/blobs/{key}") else {
            return;
        };
        if let Some(put) = item.put.as_mut() {
            // An empty body is a valid, zero-byte blob.
            let mut body = RequestBody::new();
            body.description = Some("The blob's bytes; its Content-Type is kept".into());
            body.required = Some(Required::False);
            body.content.insert(
                "application/octet-stream".into(),
                RefOr::T(Content::new(Some(bytes_schema()))),
            );
            put.request_body = Some(RefOr::T(body));
        }
        if let Some(get) = item.get.as_mut()
            && let Some(RefOr::T(ok)) = get.responses.responses.get_mut("200")
        {
            ok.content.clear();
            ok.content
                .insert("*/*".into(), RefOr::T(Content::new(Some(bytes_schema()))));
        }
    }
}
