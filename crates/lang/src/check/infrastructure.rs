//! Infrastructure items — nodes, pools and links — and the placement and resource attributes every component
//! shares (`on`, `near`, `gpu`, `arch`, `replicas_per_node`, `cpu`, `memory`, `disk`).

use super::attributes::{Attributes, Shape, Spec};
use super::{Checker, ItemKind, Lowered};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::suggest;
use crate::syntax::ast::{Expr, ExprKind, HeaderPart, Section};
use stratum_core::ir::*;
use stratum_core::units::{ByteSize, Dimension, HourlyCost};

const MACHINE: Spec = &[
    ("tier", Shape::Value),
    ("cpu", Shape::Value),
    ("memory", Shape::Value),
    ("disk", Shape::Value),
    ("arch", Shape::Value),
    ("gpu", Shape::Value),
    ("os", Shape::Value),
    ("labels", Shape::Value),
    ("cost", Shape::Value),
    ("provider", Shape::Value),
];
const NODE_ONLY: Spec = &[("address", Shape::Value)];
const POOL_ONLY: Spec = &[("min", Shape::Value), ("max", Shape::Value)];
const OBJECTIVE: Spec =
    &[("latency", Shape::Value), ("traffic", Shape::Value), ("cost", Shape::Value), ("near", Shape::Value)];
const LINK: Spec =
    &[("latency", Shape::Value), ("bandwidth", Shape::Value), ("loss", Shape::Value), ("metered", Shape::Value)];

/// Placement constraints, accepted by every component.
pub(crate) const PLACEMENT: Spec = &[
    ("on", Shape::Value),
    ("near", Shape::Value),
    ("gpu", Shape::Value),
    ("arch", Shape::Value),
    ("replicas_per_node", Shape::Value),
];

/// Resource requests, accepted by every component that runs as a process.
pub(crate) const RESOURCES: Spec = &[("cpu", Shape::Value), ("memory", Shape::Value), ("disk", Shape::Value)];

/// The kinds a component may be `near`.
const COMPONENTS: &[ItemKind] = &[
    ItemKind::Source,
    ItemKind::Stream,
    ItemKind::Sink,
    ItemKind::Batch,
    ItemKind::Service,
    ItemKind::Tool,
    ItemKind::Dataset,
];

impl<'a> Checker<'a> {
    pub(super) fn lower_node(&mut self, section: &'a Section, name: String) -> Lowered {
        let owner = format!("node `{name}`");
        let attributes = self.attributes(section.statements(), &[MACHINE, NODE_ONLY], &owner, section.keyword.span);
        let machine = self.machine(&attributes);
        let address = attributes.value("address").and_then(|value| self.string(value));
        match machine {
            Some(machine) => Lowered::Node(Node { name, machine, address }),
            None => Lowered::Nothing,
        }
    }

    pub(super) fn lower_pool(&mut self, section: &'a Section, name: String) -> Lowered {
        let owner = format!("pool `{name}`");
        let attributes = self.attributes(section.statements(), &[MACHINE, POOL_ONLY], &owner, section.keyword.span);
        let machine = self.machine(&attributes);
        let min = self.required(&attributes, "min", "min = 1").and_then(|value| self.whole(value, 0, "`min`"));
        let max_expr = self.required(&attributes, "max", "max = 10");
        let max = max_expr.and_then(|value| self.whole(value, 1, "`max`"));
        if let (Some(min), Some(max), Some(max_expr)) = (min, max, max_expr)
            && min > max
        {
            self.report(
                Diagnostic::new(Code::OutOfRange, max_expr.span, format!("`max` ({max}) is less than `min` ({min})"))
                    .label("smaller than min")
                    .help(format!("make `max` at least {min}, or lower `min`")),
            );
        }
        match (machine, min, max) {
            (Some(machine), Some(min), Some(max)) => {
                Lowered::Pool(Pool { name, machine, min: min as u32, max: max as u32 })
            }
            _ => Lowered::Nothing,
        }
    }

    fn machine(&mut self, attributes: &Attributes<'a>) -> Option<Machine> {
        let tier = self.required(attributes, "tier", "tier = edge").and_then(|value| self.tier(value));
        let cpu = self.required(attributes, "cpu", "cpu = 4").and_then(|value| self.positive(value, "`cpu`"));
        let memory = self.required(attributes, "memory", "memory = 4 GiB").and_then(|value| self.size(value));
        let disk = attributes.value("disk").and_then(|value| self.size(value));
        self.plausible(attributes, cpu, memory, disk);
        let arch = match attributes.value("arch") {
            Some(value) => self.word(value, Arch::NAMES, "an architecture").and_then(Arch::from_name),
            None => Some(Arch::X86_64),
        };
        let accelerators = attributes.value("gpu").map(|value| self.accelerators(value)).unwrap_or_default();
        let os = attributes.value("os").and_then(|value| self.string_or_name(value));
        let labels = attributes.value("labels").map(|value| self.string_map(value)).unwrap_or_default();
        let cost = attributes.value("cost").and_then(|value| self.cost(value));
        let provider = attributes.value("provider").and_then(|value| self.string_or_name(value));
        Some(Machine {
            tier: tier?,
            cpu: cpu?,
            memory: memory?,
            disk,
            arch: arch?,
            accelerators,
            os,
            labels,
            cost,
            provider,
        })
    }

    /// `objective { latency = 1  traffic = 1  cost = 0.1  near = 10 }`: the planner's weights; missing ones keep
    /// their defaults.
    pub(super) fn lower_objective(&mut self, section: &'a Section) -> ObjectiveWeights {
        let attributes = self.attributes(section.statements(), &[OBJECTIVE], "the objective", section.keyword.span);
        let mut weights = ObjectiveWeights::default();
        for (name, weight) in [
            ("latency", &mut weights.latency),
            ("traffic", &mut weights.traffic),
            ("cost", &mut weights.cost),
            ("near", &mut weights.near),
        ] {
            if let Some(value) = attributes.value(name)
                && let Some(number) = self.non_negative(value, name)
            {
                *weight = number;
            }
        }
        weights
    }

    fn non_negative(&mut self, expr: &Expr, what: &str) -> Option<f64> {
        let value = self.number(expr)?;
        if value < 0.0 {
            self.report(
                Diagnostic::new(Code::OutOfRange, expr.span, format!("`{what}` cannot be negative, found {value}"))
                    .label("out of range")
                    .help("use 0 to ignore this part of the objective"),
            );
            return None;
        }
        Some(value)
    }

    pub(super) fn lower_link(&mut self, section: &'a Section) -> Lowered {
        let ends: Vec<&crate::syntax::ast::Ident> = section
            .header
            .iter()
            .filter_map(|part| match part {
                HeaderPart::Name(name) => Some(name),
                _ => None,
            })
            .collect();
        let has_arrow = section.header.iter().any(|part| matches!(part, HeaderPart::Arrow(_)));
        if ends.len() != 2 || !has_arrow {
            self.report(
                Diagnostic::new(Code::SyntaxError, section.keyword.span, "a link names its two ends: `link A -> B`")
                    .label("expected two ends and an arrow")
                    .help("write `link edge -> fog { … }`, with tiers or node names"),
            );
            return Lowered::Nothing;
        }
        let owner = format!("link `{} -> {}`", ends[0].text, ends[1].text);
        let from = self.endpoint(ends[0]);
        let to = self.endpoint(ends[1]);
        let attributes = self.attributes(section.statements(), &[LINK], &owner, section.keyword.span);
        let latency = self.required(&attributes, "latency", "latency = 5 ms").and_then(|value| self.duration(value));
        let bandwidth = self
            .required(&attributes, "bandwidth", "bandwidth = 100 Mbit/s")
            .and_then(|value| self.quantity(value, Dimension::Bandwidth));
        let loss = attributes.value("loss").and_then(|value| self.fraction(value, "`loss`"));
        let metered = attributes.value("metered").and_then(|value| self.boolean(value)).unwrap_or(false);
        match (from, to, latency, bandwidth) {
            (Some(from), Some(to), Some(latency), Some(bandwidth)) => Lowered::Link(Link {
                from,
                to,
                latency,
                bandwidth: stratum_core::units::Bandwidth(bandwidth),
                loss,
                metered,
            }),
            _ => Lowered::Nothing,
        }
    }

    fn endpoint(&mut self, end: &crate::syntax::ast::Ident) -> Option<Endpoint> {
        if let Some(tier) = Tier::from_name(&end.text) {
            return Some(Endpoint::Tier(tier));
        }
        if self.item_named(&end.text).is_none()
            && let Some(tier) = suggest::nearest(&end.text, Tier::NAMES.iter().copied())
        {
            self.report(
                Diagnostic::new(Code::UnknownName, end.span, format!("unknown tier or node `{}`", end.text))
                    .label("not a tier, node or pool")
                    .help(format!("did you mean `{tier}`?")),
            );
            return None;
        }
        self.resolve(&end.text, end.span, &[ItemKind::Node, ItemKind::Pool], "a link end")
            .map(|_| Endpoint::Node(end.text.clone()))
    }

    pub(crate) fn tier(&mut self, expr: &Expr) -> Option<Tier> {
        self.word(expr, Tier::NAMES, "a tier").and_then(Tier::from_name)
    }

    pub(crate) fn size(&mut self, expr: &Expr) -> Option<ByteSize> {
        self.quantity(expr, Dimension::Size).map(|bytes| ByteSize(bytes.round() as u64))
    }

    pub(crate) fn duration(&mut self, expr: &Expr) -> Option<stratum_core::units::Duration> {
        self.quantity(expr, Dimension::Duration).map(stratum_core::units::Duration)
    }

    fn positive(&mut self, expr: &Expr, what: &str) -> Option<f64> {
        let value = self.number(expr)?;
        if value <= 0.0 {
            self.report(
                Diagnostic::new(Code::OutOfRange, expr.span, format!("{what} must be more than 0, found {value}"))
                    .label("out of range")
                    .help("use a positive number, such as `0.5` or `4`"),
            );
            return None;
        }
        Some(value)
    }

    fn cost(&mut self, expr: &Expr) -> Option<HourlyCost> {
        let (amount, unit) = self.quantity_with_unit(expr, Dimension::MoneyPerHour)?;
        Some(HourlyCost { amount, currency: unit.currency.unwrap_or_default() })
    }

    pub(crate) fn string_or_name(&mut self, expr: &Expr) -> Option<String> {
        match &expr.kind {
            ExprKind::Name(name) => Some(name.clone()),
            _ => self.string(expr),
        }
    }

    /// `1 x "nvidia-t4"` or a list of them.
    fn accelerators(&mut self, expr: &Expr) -> Vec<Accelerator> {
        let mut accelerators = Vec::new();
        for item in self.items(expr) {
            match &item.kind {
                ExprKind::Accelerator { count, kind, .. } if *count >= 1.0 && count.fract() == 0.0 => {
                    accelerators.push(Accelerator { count: *count as u32, kind: kind.value.clone() })
                }
                ExprKind::Accelerator { .. } => {
                    self.report(
                        Diagnostic::new(
                            Code::OutOfRange,
                            item.span,
                            "an accelerator count must be a whole number of at least 1",
                        )
                        .label("out of range")
                        .help("write `1 x \"nvidia-t4\"`"),
                    );
                }
                _ => self.wrong_value(item, "accelerators such as `1 x \"nvidia-t4\"`"),
            }
        }
        accelerators
    }

    /// Reads the placement attributes. `input_tier` is where the component's input lives, used when the
    /// component states no tier of its own.
    pub(crate) fn placement(&mut self, attributes: &Attributes<'a>, input_tier: Option<Tier>) -> Placement {
        let mut placement = Placement::default();
        if let Some(on) = attributes.value("on") {
            self.read_on(on, &mut placement);
        }
        if let Some(near) = attributes.value("near")
            && let Some((name, span)) = self.name(near, "the name of a component")
            && self.resolve(&name, span, COMPONENTS, "`near`").is_some()
        {
            placement.near = Some(name);
        }
        if let Some(gpu) = attributes.value("gpu") {
            placement.accelerators = self.accelerators(gpu);
        }
        if let Some(arch) = attributes.value("arch") {
            placement.arch = self.word(arch, Arch::NAMES, "an architecture").and_then(Arch::from_name);
        }
        if let Some(replicas) = attributes.value("replicas_per_node") {
            placement.replicas_per_node = self.whole(replicas, 1, "`replicas_per_node`").map(|value| value as u32);
        }
        placement.inferred_tier = placement.tier.or(input_tier);
        placement
    }

    /// `on = fog`, `on = fog_downtown` (a node), `on = cloud_workers` (a pool) or `on = { zone: "north" }`.
    pub(crate) fn read_on(&mut self, on: &Expr, placement: &mut Placement) {
        match &on.kind {
            ExprKind::Map(_) => placement.labels = self.string_map(on),
            ExprKind::Name(name) => {
                if let Some(tier) = Tier::from_name(name) {
                    placement.tier = Some(tier);
                    return;
                }
                if self.item_named(name).is_none()
                    && let Some(tier) = suggest::nearest(name, Tier::NAMES.iter().copied())
                {
                    self.report(
                        Diagnostic::new(Code::UnknownName, on.span, format!("unknown tier, node or pool `{name}`"))
                            .label("`on` takes a tier, a node, a pool or a label map")
                            .help(format!("did you mean `{tier}`?")),
                    );
                    return;
                }
                let Some(id) = self.resolve(name, on.span, &[ItemKind::Node, ItemKind::Pool], "`on`") else { return };
                self.lower_item(id);
                match &self.lowered[id] {
                    Lowered::Node(node) => {
                        placement.node = Some(name.clone());
                        placement.tier = Some(node.machine.tier);
                    }
                    Lowered::Pool(pool) => {
                        placement.pool = Some(name.clone());
                        placement.tier = Some(pool.machine.tier);
                    }
                    _ => {}
                }
            }
            _ => self.wrong_value(on, "a tier, node or pool name, or a label map such as `{ zone: \"north\" }`"),
        }
    }

    pub(crate) fn resources(&mut self, attributes: &Attributes<'a>) -> Resources {
        let resources = Resources {
            cpu: attributes.value("cpu").and_then(|value| self.positive(value, "`cpu`")),
            memory: attributes.value("memory").and_then(|value| self.size(value)),
            disk: attributes.value("disk").and_then(|value| self.size(value)),
        };
        self.plausible(attributes, resources.cpu, resources.memory, resources.disk);
        resources
    }

    /// Warns about cores, memory or disk beyond any machine built: a typing slip (`1e300`, a unit one step too
    /// large) that would otherwise saturate and plan as if it were real.
    fn plausible(
        &mut self,
        attributes: &Attributes<'a>,
        cpu: Option<f64>,
        memory: Option<ByteSize>,
        disk: Option<ByteSize>,
    ) {
        const MOST_CORES: f64 = 100_000.0;
        const MOST_MEMORY: u64 = 1 << 50;
        const MOST_DISK: u64 = 1 << 60;
        // The limit, when the value passes it (a saturated size would only mislead if shown, so it is not).
        let checks = [
            ("cpu", cpu.filter(|cores| *cores > MOST_CORES).map(|_| format!("{MOST_CORES} cores"))),
            ("memory", memory.filter(|size| size.0 > MOST_MEMORY).map(|_| ByteSize(MOST_MEMORY).to_string())),
            ("disk", disk.filter(|size| size.0 > MOST_DISK).map(|_| ByteSize(MOST_DISK).to_string())),
        ];
        for (name, limit) in checks {
            let (Some(limit), Some(expr)) = (limit, attributes.value(name)) else { continue };
            self.report(
                Diagnostic::new(Code::ImplausibleQuantity, expr.span, format!("`{name}` is more than any machine has"))
                    .label(format!("more than {limit}"))
                    .help("check the number and its unit, as in `cpu = 4`, `memory = 16 GiB`, `disk = 2 TiB`"),
            );
        }
    }
}
