//! The one way Stratum declares a closed vocabulary (event kinds, policy signals, API error codes, phases): an
//! enum whose every variant has exactly one string form, written once beside the variant. The macro derives the
//! list of all variants, the string form, parsing, `Display` and serde from that one table, so a new variant cannot
//! be forgotten in a match over strings or spelled two ways.

/// Declares a vocabulary enum: `vocabulary! { /// docs  pub enum Name { /// docs  Variant = "string", … } }`.
///
/// The enum gets `ALL` (every variant, in declaration order), `as_str`, `parse`, `Display`, and serde
/// implementations that read and write the string form; reading any other string is an error that lists the
/// accepted ones.
#[macro_export]
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The variant's one string form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The variant a string names, if any.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|variant| variant.as_str() == text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl $crate::vocabulary::serde::Serialize for $name {
            fn serialize<S: $crate::vocabulary::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::vocabulary::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::vocabulary::serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = <String as $crate::vocabulary::serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|variant| variant.as_str()).collect();
                    <D::Error as $crate::vocabulary::serde::de::Error>::custom(format!(
                        "unknown {} `{text}`; expected one of: {}",
                        stringify!($name),
                        names.join(", ")
                    ))
                })
            }
        }
    };
}

/// The serde the macro's implementations name, so that a crate using the macro needs no path of its own to it.
#[doc(hidden)]
pub use serde;

#[cfg(test)]
// The test's vocabulary is private; the items the macro makes are `pub` for the crates that use it.
#[allow(unreachable_pub)]
mod tests {
    crate::vocabulary! {
        /// A test vocabulary.
        enum Colour {
            Red = "red",
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn every_variant_reads_back_from_its_one_string_form() {
        for colour in Colour::ALL {
            let json = serde_json::to_string(colour).unwrap();
            assert_eq!(json, format!("\"{}\"", colour.as_str()));
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), *colour);
            assert_eq!(Colour::parse(&colour.to_string()), Some(*colour));
        }
        let error = serde_json::from_str::<Colour>("\"green\"").unwrap_err().to_string();
        assert!(error.contains("unknown Colour `green`; expected one of: red, dark-blue"), "{error}");
    }
}
