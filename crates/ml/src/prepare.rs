//! Preparation: turning rows into the numeric matrix the algorithms read. Row filters and feature expressions are
//! applied first; imputation, one-hot encoding and scaling are *fitted* on training rows only (inside each fold,
//! so nothing leaks from the test rows) and stored with the model, so serving applies exactly the same steps.

use crate::Error;
use crate::data::Table;
use crate::matrix::Matrix;
use serde::{Deserialize, Serialize};
use stratum_core::eval::{Datum, evaluate};
use stratum_core::ir::{Expr, ImputeStrategy, PrepareStep, Task, Training};
use stratum_core::types::DataType;

/// One feature as computed from a row: a number (NaN when missing) or a category (None when missing).
#[derive(Clone, Debug)]
pub enum RawColumn {
    /// A number per row.
    Numeric(Vec<f64>),
    /// A category per row.
    Categorical(Vec<Option<String>>),
}

/// What the model learns from: the features of every usable row, and the target.
#[derive(Clone, Debug)]
pub struct Examples {
    /// The features' names, in column order.
    pub names: Vec<String>,
    /// Each feature's values.
    pub columns: Vec<RawColumn>,
    /// What to learn.
    pub target: Target,
    /// How many rows.
    pub rows: usize,
    /// The table row each example came from (rows that a filter or a missing target left out have none).
    pub table_rows: Vec<usize>,
}

/// The target of supervised learning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// Class indices into `classes` (sorted labels).
    Classes {
        /// The class index of each row.
        labels: Vec<usize>,
        /// The class labels, sorted.
        classes: Vec<String>,
    },
    /// A value per row (regression).
    Values(Vec<f64>),
    /// Clustering: no target.
    None,
}

impl Target {
    /// The target of the rows `rows` only, in that order.
    pub fn subset(&self, rows: &[usize]) -> Target {
        match self {
            Target::Classes { labels, classes } => {
                Target::Classes { labels: rows.iter().map(|row| labels[*row]).collect(), classes: classes.clone() }
            }
            Target::Values(values) => Target::Values(rows.iter().map(|row| values[*row]).collect()),
            Target::None => Target::None,
        }
    }
}

/// A feature definition, kept with the model to compute features for new records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDefinition {
    /// The feature's name.
    pub name: String,
    /// How it is computed from a record.
    pub expr: Expr,
    /// It is a category (one-hot encoded), not a number.
    pub categorical: bool,
}

/// A value as a class label or category; none when missing.
pub(crate) fn label_text(value: &Datum) -> Option<String> {
    match value {
        Datum::Null => None,
        Datum::Bool(value) => Some(value.to_string()),
        Datum::Int(value) => Some(value.to_string()),
        Datum::Float(value) => Some(value.to_string()),
        Datum::Text(value) => Some(value.clone()),
        Datum::Timestamp(value) => Some(value.to_string()),
        Datum::Duration(value) => Some(value.to_string()),
    }
}

/// The feature definitions of a training block, after `select`, `drop` and `one_hot` steps.
pub fn feature_definitions(training: &Training) -> Vec<FeatureDefinition> {
    let mut definitions: Vec<FeatureDefinition> = training
        .features
        .iter()
        .map(|feature| FeatureDefinition {
            name: feature.name.clone(),
            expr: feature.expr.clone(),
            categorical: matches!(feature.data_type.without_optional(), DataType::String),
        })
        .collect();
    for step in &training.prepare {
        match step {
            PrepareStep::Select { columns } => definitions.retain(|definition| columns.contains(&definition.name)),
            PrepareStep::Drop { columns } => definitions.retain(|definition| !columns.contains(&definition.name)),
            PrepareStep::OneHot { columns } if !columns.is_empty() => {
                for definition in definitions.iter_mut().filter(|definition| columns.contains(&definition.name)) {
                    definition.categorical = true;
                }
            }
            _ => {}
        }
    }
    definitions
}

/// Computes features and the target for every row that passes the filters and has a target.
pub fn examples(table: &Table, training: &Training, task: Task) -> Result<Examples, Error> {
    let definitions = feature_definitions(training);
    let filters: Vec<&Expr> = training
        .prepare
        .iter()
        .filter_map(|step| match step {
            PrepareStep::Filter { condition } => Some(condition),
            _ => None,
        })
        .collect();
    let target_index = training.target.as_ref().and_then(|target| table.column_index(target));
    let mut columns: Vec<RawColumn> =
        definitions
            .iter()
            .map(|definition| {
                if definition.categorical { RawColumn::Categorical(Vec::new()) } else { RawColumn::Numeric(Vec::new()) }
            })
            .collect();
    // A feature that is a plain column is read by position; only computed ones go through the evaluator, which finds
    // fields by name.
    let positions: Vec<Option<usize>> = definitions
        .iter()
        .map(|definition| match &definition.expr {
            Expr::Field { name } => table.column_index(name),
            _ => None,
        })
        .collect();
    let mut raw_target: Vec<Datum> = Vec::new();
    let mut table_rows = Vec::new();
    for (row_index, row) in table.rows.iter().enumerate() {
        let reader = table.field_reader(row);
        if !filters.iter().all(|filter| evaluate(filter, &reader).is_true()) {
            continue;
        }
        if let Some(index) = target_index {
            if row[index] == Datum::Null {
                continue;
            }
            raw_target.push(row[index].clone());
        }
        table_rows.push(row_index);
        for ((definition, column), position) in definitions.iter().zip(columns.iter_mut()).zip(&positions) {
            let computed;
            let value = match position {
                Some(index) => &row[*index],
                None => {
                    computed = evaluate(&definition.expr, &reader);
                    &computed
                }
            };
            match column {
                RawColumn::Numeric(values) => values.push(value.as_f64().unwrap_or(f64::NAN)),
                RawColumn::Categorical(values) => values.push(label_text(value)),
            }
        }
    }
    let rows = match columns.first() {
        Some(RawColumn::Numeric(values)) => values.len(),
        Some(RawColumn::Categorical(values)) => values.len(),
        None => raw_target.len(),
    };
    let target = match task {
        Task::Clustering => Target::None,
        Task::Classification => {
            let texts: Vec<String> = raw_target.iter().map(|value| label_text(value).unwrap_or_default()).collect();
            let mut classes: Vec<String> = texts.clone();
            classes.sort();
            classes.dedup();
            if classes.len() < 2 {
                return Err(Error::OneClass {
                    target: training.target.clone().unwrap_or_default(),
                    class: classes.first().cloned().unwrap_or_default(),
                });
            }
            let labels = texts.iter().map(|text| classes.binary_search(text).unwrap_or(0)).collect();
            Target::Classes { labels, classes }
        }
        Task::Regression | Task::Forecasting => {
            Target::Values(raw_target.iter().map(|value| value.as_f64().unwrap_or(f64::NAN)).collect())
        }
    };
    // An infinite number would turn scaling and every fit into NaN, and the search would report nothing useful.
    let infinite = |values: &[f64]| values.iter().position(|value| value.is_infinite());
    let row_of = |example: usize| table_rows[example] + 1;
    for (name, column) in definitions.iter().map(|definition| &definition.name).zip(&columns) {
        if let RawColumn::Numeric(values) = column
            && let Some(example) = infinite(values)
        {
            let (name, value, row) = (name.clone(), values[example], row_of(example));
            return Err(Error::NonFinite { column: "feature", name, value, row });
        }
    }
    if let Target::Values(values) = &target
        && let Some(example) = infinite(values)
    {
        let (name, value, row) = (training.target.clone().unwrap_or_default(), values[example], row_of(example));
        return Err(Error::NonFinite { column: "target", name, value, row });
    }
    if rows == 0 {
        return Err(Error::NoData {
            dataset: training.data.clone(),
            reason: "no row passes the filters with a target".into(),
        });
    }
    Ok(Examples {
        names: definitions.iter().map(|definition| definition.name.clone()).collect(),
        columns,
        target,
        rows,
        table_rows,
    })
}

/// The preparation fitted on training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preparation {
    /// How each feature is computed from a record.
    pub features: Vec<FeatureDefinition>,
    /// Per feature: the value that replaces a missing number (numeric features).
    pub fill: Vec<Option<f64>>,
    /// Per feature: the categories seen in training (categorical features), each a one-hot column.
    pub categories: Vec<Vec<String>>,
    /// Per output column: (offset, scale) so that value = (x - offset) / scale.
    pub scaling: Vec<(f64, f64)>,
    /// The names of the output columns, in order.
    pub output_names: Vec<String>,
}

impl Preparation {
    /// Fits imputation, categories and scaling on the given rows, and returns them prepared: the rows are encoded
    /// once, for fitting and for the model (every fold of a search does this).
    pub fn fit_transform(
        examples: &Examples,
        rows: &[usize],
        training: &Training,
    ) -> Result<(Preparation, Matrix), Error> {
        let features = feature_definitions(training);
        let impute = training.prepare.iter().rev().find_map(|step| match step {
            PrepareStep::Impute { strategy } => Some(strategy),
            _ => None,
        });
        let mut fill = Vec::new();
        let mut categories = Vec::new();
        let mut output_names = Vec::new();
        for (column, name) in examples.columns.iter().zip(&examples.names) {
            match column {
                RawColumn::Numeric(values) => {
                    let present: Vec<f64> =
                        rows.iter().map(|row| values[*row]).filter(|value| !value.is_nan()).collect();
                    let missing = present.len() < rows.len();
                    let value = match impute {
                        Some(strategy) => Some(impute_value(strategy, &present)),
                        None if missing => return Err(Error::MissingValues { feature: name.clone() }),
                        None => None,
                    };
                    fill.push(value);
                    categories.push(Vec::new());
                    output_names.push(name.clone());
                }
                RawColumn::Categorical(values) => {
                    let mut seen: Vec<String> = rows.iter().filter_map(|row| values[*row].clone()).collect();
                    seen.sort();
                    seen.dedup();
                    output_names.extend(seen.iter().map(|category| format!("{name}={category}")));
                    fill.push(None);
                    categories.push(seen);
                }
            }
        }
        let mut preparation = Preparation { features, fill, categories, scaling: Vec::new(), output_names };
        let mut unscaled = preparation.transform_unscaled(examples, rows);
        let standardize = training.prepare.contains(&PrepareStep::Standardize);
        let min_max = training.prepare.contains(&PrepareStep::MinMaxScale);
        let numeric = preparation.numeric_outputs();
        preparation.scaling = (0..unscaled.columns)
            .map(|column| {
                if !numeric[column] || !(standardize || min_max) || unscaled.rows == 0 {
                    return (0.0, 1.0);
                }
                let values: Vec<f64> = (0..unscaled.rows).map(|row| unscaled.get(row, column)).collect();
                if standardize {
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    let deviation =
                        (values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
                    (mean, if deviation > 1e-12 { deviation } else { 1.0 })
                } else {
                    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (low, if high - low > 1e-12 { high - low } else { 1.0 })
                }
            })
            .collect();
        for row in unscaled.values.chunks_exact_mut(unscaled.columns.max(1)) {
            preparation.scale(row);
        }
        Ok((preparation, unscaled))
    }

    /// Which output columns are numbers (scaled) rather than one-hot indicators.
    fn numeric_outputs(&self) -> Vec<bool> {
        let mut numeric = Vec::new();
        for (feature, categories) in self.features.iter().zip(&self.categories) {
            if feature.categorical {
                numeric.extend(std::iter::repeat_n(false, categories.len()));
            } else {
                numeric.push(true);
            }
        }
        numeric
    }

    fn encode_into(&self, output: &mut [f64], value_of: &dyn Fn(usize) -> (f64, Option<String>)) {
        let mut position = 0;
        for (index, feature) in self.features.iter().enumerate() {
            let (number, category) = value_of(index);
            if feature.categorical {
                let categories = &self.categories[index];
                for slot in output[position..position + categories.len()].iter_mut() {
                    *slot = 0.0;
                }
                if let Some(category) = category
                    && let Ok(found) = categories.binary_search(&category)
                {
                    output[position + found] = 1.0;
                }
                position += categories.len();
            } else {
                output[position] = if number.is_nan() { self.fill[index].unwrap_or(0.0) } else { number };
                position += 1;
            }
        }
    }

    /// The encoded rows before scaling: the same result as `encode_into` on every row, with each feature's source
    /// resolved once instead of a dynamic call per cell (this runs for every fold's training and test rows).
    fn transform_unscaled(&self, examples: &Examples, rows: &[usize]) -> Matrix {
        enum Source<'a> {
            Number { values: &'a [f64], fill: f64 },
            Category { values: &'a [Option<String>], categories: &'a [String] },
            Constant(f64),
        }
        let mut sources = Vec::with_capacity(self.features.len());
        let mut width = 0;
        for (index, feature) in self.features.iter().enumerate() {
            let fill = self.fill[index].unwrap_or(0.0);
            let source = match (&examples.columns[index], feature.categorical) {
                (RawColumn::Categorical(values), true) => {
                    Source::Category { values, categories: &self.categories[index] }
                }
                // A categorical feature without text has no category: all its slots stay zero.
                (RawColumn::Numeric(_), true) => Source::Category { values: &[], categories: &self.categories[index] },
                (RawColumn::Numeric(values), false) => Source::Number { values, fill },
                (RawColumn::Categorical(_), false) => Source::Constant(fill),
            };
            width += match &source {
                Source::Category { categories, .. } => categories.len(),
                _ => 1,
            };
            sources.push(source);
        }
        let mut matrix = Matrix::new(rows.len(), width);
        for (output, row) in matrix.values.chunks_exact_mut(width.max(1)).zip(rows) {
            let mut position = 0;
            for source in &sources {
                match source {
                    Source::Number { values, fill } => {
                        let number = values[*row];
                        output[position] = if number.is_nan() { *fill } else { number };
                        position += 1;
                    }
                    Source::Constant(fill) => {
                        output[position] = *fill;
                        position += 1;
                    }
                    Source::Category { values, categories } => {
                        if let Some(Some(category)) = values.get(*row)
                            && let Ok(found) = categories.binary_search(category)
                        {
                            output[position + found] = 1.0;
                        }
                        position += categories.len();
                    }
                }
            }
        }
        matrix
    }

    fn scale(&self, row: &mut [f64]) {
        for (value, (offset, scale)) in row.iter_mut().zip(&self.scaling) {
            *value = (*value - offset) / scale;
        }
    }

    /// The prepared matrix for the given rows of the examples.
    pub fn transform(&self, examples: &Examples, rows: &[usize]) -> Matrix {
        let mut matrix = self.transform_unscaled(examples, rows);
        for row in 0..matrix.rows {
            let values = &mut matrix.values[row * matrix.columns..(row + 1) * matrix.columns];
            self.scale(values);
        }
        matrix
    }

    /// Prepares one record for prediction, reading its fields by name.
    pub fn transform_record(&self, field: &dyn Fn(&str) -> Datum) -> Vec<f64> {
        let computed: Vec<Datum> = self.features.iter().map(|feature| evaluate(&feature.expr, field)).collect();
        let value_of = |index: usize| {
            let value = &computed[index];
            if self.features[index].categorical {
                (f64::NAN, label_text(value))
            } else {
                (value.as_f64().unwrap_or(f64::NAN), None)
            }
        };
        let mut row = vec![0.0; self.output_names.len()];
        self.encode_into(&mut row, &value_of);
        self.scale(&mut row);
        row
    }
}

fn impute_value(strategy: &ImputeStrategy, present: &[f64]) -> f64 {
    if present.is_empty() {
        return match strategy {
            ImputeStrategy::Constant(value) => *value,
            _ => 0.0,
        };
    }
    match strategy {
        ImputeStrategy::Mean => present.iter().sum::<f64>() / present.len() as f64,
        ImputeStrategy::Median => {
            let mut sorted = present.to_vec();
            sorted.sort_by(f64::total_cmp);
            let middle = sorted.len() / 2;
            if sorted.len().is_multiple_of(2) { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] }
        }
        ImputeStrategy::MostFrequent => {
            let mut sorted = present.to_vec();
            sorted.sort_by(f64::total_cmp);
            let (mut best, mut best_count, mut index) = (sorted[0], 0, 0);
            while index < sorted.len() {
                let run = sorted[index..].iter().take_while(|value| **value == sorted[index]).count();
                if run > best_count {
                    best = sorted[index];
                    best_count = run;
                }
                index += run;
            }
            best
        }
        ImputeStrategy::Constant(value) => *value,
    }
}
