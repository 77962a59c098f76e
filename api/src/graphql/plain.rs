//! Objects built at once when every field selected on them is answered from memory.
//!
//! async-graphql resolves each field of an object as a boxed future polled through a
//! `FuturesUnordered`. For a list's rows that select a few columns (a page of customers
//! with their latest calls is 250 call edges of `id` and `status`) that machinery was the
//! server's largest cost, several thousand instructions per row (callgrind). [`Plain`]
//! wraps such a type: when the selection on it is only fields it can answer from memory
//! (no arguments, no directives, no fragments, no repeated response keys), the object is
//! built in one pass; otherwise the derived resolver runs, so the answer never differs.
//! Each field's value still comes from its own resolver and its type's own output
//! conversion; only the scheduling is skipped. The schema registers no extensions
//! (`build_schema`); one that watched each field's resolution would not see these.

use std::borrow::Cow;

use async_graphql::futures_util::FutureExt;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::{Context, ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

/// A type some of whose fields can be answered without waiting.
pub trait PlainFields: OutputType {
    /// The value of `field` (one without arguments or directives) if it can be answered
    /// from memory; `None` sends the whole object down the derived resolver. `ctx` is the
    /// object's selection set.
    fn plain_field(
        &self,
        _ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> Option<Value> {
        None
    }
}

/// The object `value` with the selection of `ctx`, if every selected field is plain.
pub fn plain_object<T: PlainFields>(value: &T, ctx: &ContextSelectionSet<'_>) -> Option<Value> {
    let items = &ctx.item.node.items;
    if items.is_empty() {
        return None;
    }
    let mut object = IndexMap::with_capacity(items.len());
    for selection in items {
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        if !field.node.directives.is_empty() || !field.node.arguments.is_empty() {
            return None;
        }
        let key = field.node.response_key().node.clone();
        if object.contains_key(&key) {
            // Repeated keys merge their selections: the derived resolver does that.
            return None;
        }
        let v = if field.node.name.node == "__typename" {
            Value::String(value.introspection_type_name().into_owned())
        } else {
            value.plain_field(ctx, field)?
        };
        object.insert(key, v);
    }
    Some(Value::Object(object))
}

/// A scalar or enum field's value (its resolver's output, which was ready at once),
/// converted by its type's own output conversion in the field's context.
pub fn output<T: OutputType>(
    value: &T,
    ctx_field: &Context<'_>,
    field: &Positioned<Field>,
) -> Option<Value> {
    let ctx_value = ctx_field.with_selection_set(&field.node.selection_set);
    OutputType::resolve(value, &ctx_value, field)
        .now_or_never()?
        .ok()
}

/// A field whose value is itself a plain object.
pub fn nested<T: PlainFields>(
    value: &T,
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
) -> Option<Value> {
    let ctx_field = ctx.with_field(field);
    plain_object(
        value,
        &ctx_field.with_selection_set(&field.node.selection_set),
    )
}

/// `T` in the schema, built at once when its selection allows (see the module's note).
pub struct Plain<T>(pub T);

impl<T: PlainFields> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain_object(&self.0, ctx) {
            Some(value) => Ok(value),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// Declares which fields of a type [`PlainFields`] answers, each by its resolver method:
/// `plain_fields!(Call { "id" => id, "status" => status })`.
macro_rules! plain_fields {
    ($ty:ty { $($name:literal => $method:ident),* $(,)? }) => {
        impl $crate::graphql::plain::PlainFields for $ty {
            fn plain_field(
                &self,
                ctx: &async_graphql::ContextSelectionSet<'_>,
                field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
            ) -> Option<async_graphql::Value> {
                match field.node.name.node.as_str() {
                    $($name => {
                        let ctx_field = ctx.with_field(field);
                        let value = async_graphql::futures_util::FutureExt::now_or_never(
                            self.$method(&ctx_field),
                        )?;
                        $crate::graphql::plain::output(&value, &ctx_field, field)
                    })*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use plain_fields;
