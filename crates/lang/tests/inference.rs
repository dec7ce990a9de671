//! Unit tests of schema inference: the types of aggregates and computed fields, and the shape of windowed,
//! projected and joined outputs.

use stratum_core::types::{DataType, Field};

fn fields_of(text: &str, name: &str) -> Vec<(String, DataType, bool)> {
    stratum_test_support::application_from_text("inference.stratum", text)
        .fields_of(name)
        .unwrap_or_else(|| panic!("no output named {name}"))
        .iter()
        .map(|Field { name, data_type, private }| (name.clone(), data_type.clone(), *private))
        .collect()
}

const HEADER: &str = "app t\nschema R { k: string  n: int  x: float  ts: timestamp  secret: string private  xs: list<int> }\n\
                      source r: generator { schema = R }\n";

fn field(name: &str, data_type: DataType) -> (String, DataType, bool) {
    (name.to_string(), data_type, false)
}

#[test]
fn aggregates_have_the_types_of_their_results() {
    let text = format!(
        "{HEADER}stream w {{ from = r  window = tumbling(1 min) by k  select {{ c = count()  si = sum(n)  sf = sum(x)  a = avg(n)  \
         lo = min(ts)  hi = max(x)  p = percentile(x, 0.5)  d = distinct(secret)  ci = count_if(x > 1) }} }}"
    );
    assert_eq!(
        fields_of(&text, "w"),
        vec![
            field("k", DataType::String),
            field("window_start", DataType::Timestamp),
            field("window_end", DataType::Timestamp),
            field("c", DataType::Int),
            field("si", DataType::Int),
            field("sf", DataType::Float),
            field("a", DataType::Float),
            field("lo", DataType::Timestamp),
            field("hi", DataType::Float),
            field("p", DataType::Float),
            field("d", DataType::Int),
            field("ci", DataType::Int),
        ]
    );
}

#[test]
fn min_and_max_of_a_private_field_stay_private() {
    let text = format!("{HEADER}stream w {{ from = r  window = session(5 min) by k  select {{ m = max(secret) }} }}");
    assert_eq!(fields_of(&text, "w")[3], ("m".to_string(), DataType::String, true));
}

#[test]
fn projections_keep_then_compute() {
    let text = format!(
        "{HEADER}stream p {{ from = r  keep = [ts, secret]  select {{ ratio = n / 2  whole = n * 2  h = hour_of_day(ts)  \
         pseudonym = hash(secret)  size = len(xs)  late = ts - ts > 5 s }} }}"
    );
    assert_eq!(
        fields_of(&text, "p"),
        vec![
            field("ts", DataType::Timestamp),
            ("secret".to_string(), DataType::String, true),
            field("ratio", DataType::Float),
            field("whole", DataType::Int),
            field("h", DataType::Int),
            field("pseudonym", DataType::String),
            field("size", DataType::Int),
            field("late", DataType::Bool),
        ]
    );
}

#[test]
fn a_filter_alone_passes_every_field_through() {
    let text = format!("{HEADER}stream f {{ from = r  where = x > 0 }}");
    assert_eq!(fields_of(&text, "f").len(), 6);
}

#[test]
fn joins_add_the_other_side_and_prefix_clashes() {
    let text = format!(
        "{HEADER}schema O {{ k: string  x: float  extra: bool }}\nsource o: generator {{ schema = O }}\n\
         stream j {{ from = r  join = o by k within 1 min }}"
    );
    let names: Vec<String> = fields_of(&text, "j").into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, ["k", "n", "x", "ts", "secret", "xs", "o_x", "extra"]);
}

#[test]
fn sliding_windows_group_by_several_keys() {
    let text =
        format!("{HEADER}stream s {{ from = r  window = sliding(10 min, 1 min) by [k, n]  select {{ c = count() }} }}");
    let names: Vec<String> = fields_of(&text, "s").into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, ["k", "n", "window_start", "window_end", "c"]);
}
