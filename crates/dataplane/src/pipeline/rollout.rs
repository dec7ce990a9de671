//! Rolling a version into a pipeline: which components run on, which are built again, and how producers are
//! rewired to the new instances in one step (see [`super`]). The first build is a rollout into an empty pipeline.

use super::specs::{Built, What, build, specs};
use super::{ComponentInfo, PipelineOptions, Rollout, Runner, Shared, Task, lock};
use crate::Error;
use crate::checkpoint::Checkpoint;
use crate::component::{BuildContext, Context, Delivery, Output, Route, Routes};
use crate::remote::Partition;
use crate::sinks::feed::Feed;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use stratum_core::ir::Application;
use tokio::sync::{mpsc, watch};

/// A component in the running pipeline.
pub(super) struct Slot {
    pub(super) info: ComponentInfo,
    pub(super) fingerprint: String,
    pub(super) inputs: Vec<(String, usize)>,
    /// A consumer's input, for wiring producers that come later. Weak: see [`Routes`].
    pub(super) sender: Option<mpsc::WeakSender<Delivery>>,
    pub(super) stop: watch::Sender<bool>,
    /// Turns true when its task has ended.
    pub(super) done: watch::Receiver<bool>,
    /// The dashboard feed it fills, by the stream or source it follows.
    pub(super) feed: Option<(String, Feed)>,
    /// A stateful stream's switch to hand its state over when retired (see [`crate::checkpoint`]).
    pub(super) hand_over: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Slot {
    /// Still running, and (for a consumer) still fed: something can still send to it.
    fn alive(&self) -> bool {
        let ended = *self.done.borrow() || self.done.has_changed().is_err();
        !ended && self.sender.as_ref().is_none_or(|sender| sender.upgrade().is_some())
    }
}

/// A built task waiting to be run, after the instance it replaces (if any) has ended.
pub(super) struct Pending {
    pub task: Task,
    pub after: Option<watch::Receiver<bool>>,
    pub done: watch::Sender<bool>,
}

/// How the components are joined, and what runs.
pub(super) struct Wiring {
    pub(super) slots: BTreeMap<String, Slot>,
    /// The components in the order the application gives them, for listings.
    pub(super) order: Vec<String>,
    /// Each producer's consumers. Weak: the producers' outputs hold them, so that a consumer's input ends when
    /// its producers do.
    pub(super) routes: BTreeMap<String, Weak<Mutex<Vec<Route>>>>,
    /// The stops of replaced or removed instances still draining: stopping the pipeline reaches them too.
    pub(super) retired: Vec<watch::Sender<bool>>,
    pub(super) stopping: bool,
    /// Nothing runs any more; a rollout now would start nothing.
    pub(super) ended: bool,
    pub(super) spawn: mpsc::UnboundedSender<Pending>,
}

/// Makes the running components those of `application` (see the module documentation). On an empty pipeline,
/// this is the first build.
pub(super) fn roll_out(
    shared: &Shared,
    application: &Application,
    options: &PipelineOptions,
    partition: Option<Partition>,
    hand_over: &[String],
) -> Result<Rollout, Error> {
    let specs = specs(application, options, partition)?;
    let context = BuildContext {
        application,
        base_dir: &options.base_dir,
        fast_generators: options.fast_generators,
        generator_limit: options.generator_limit,
        simulated_seconds: options.simulated_seconds,
        time_scale: options.time_scale,
        model_store: options.model_store.as_deref(),
        mqtt_broker: options.mqtt_broker.as_deref(),
        data_dir: options.data_dir.as_deref(),
    };
    let mut wiring = lock(&shared.wiring);
    if wiring.ended {
        return Err(Error::Ended);
    }
    // What is built again: what is new or changed, and what ended because its input did while a producer of it
    // now starts again (a path from a machine that came back, say). What ended otherwise (a source that ran out)
    // stays ended.
    let mut rebuild: BTreeSet<String> = specs
        .iter()
        .filter(|spec| {
            !wiring
                .slots
                .get(&spec.info.name)
                .is_some_and(|slot| slot.fingerprint == spec.fingerprint && slot.inputs == spec.inputs)
        })
        .map(|spec| spec.info.name.clone())
        .collect();
    loop {
        let restarting_outputs: BTreeSet<&str> = specs
            .iter()
            .filter(|spec| rebuild.contains(&spec.info.name))
            .filter_map(|spec| spec.output.as_deref())
            .collect();
        let fed_again: Vec<String> = specs
            .iter()
            .filter(|spec| !rebuild.contains(&spec.info.name))
            .filter(|spec| wiring.slots.get(&spec.info.name).is_some_and(|slot| !slot.alive()))
            .filter(|spec| spec.inputs.iter().any(|(producer, _)| restarting_outputs.contains(producer.as_str())))
            .map(|spec| spec.info.name.clone())
            .collect();
        if fed_again.is_empty() {
            break;
        }
        rebuild.extend(fed_again);
    }
    // Everything that changed is built before anything running is touched: a component that cannot be built
    // leaves the running version as it was.
    let mut rollout = Rollout::default();
    let mut built = Vec::new();
    let order: Vec<String> = specs.iter().map(|spec| spec.info.name.clone()).collect();
    for spec in specs {
        if !rebuild.contains(&spec.info.name) {
            rollout.unchanged.push(spec.info.name);
            continue;
        }
        let feed = match &spec.what {
            What::Feed(feed) => Some((spec.inputs[0].0.clone(), feed.clone())),
            _ => None,
        };
        let component = build(&spec.info.name, spec.what, &context, options)?;
        built.push((spec.info, spec.metrics_kind, spec.inputs, spec.output, spec.fingerprint, feed, component));
    }

    // Every producer's routes, held here until the outputs that keep them exist: a retired producer may end
    // before its replacement takes its routes over, and its consumers must not end in between.
    let mut held: BTreeMap<String, Routes> =
        wiring.routes.iter().filter_map(|(producer, routes)| Some((producer.clone(), routes.upgrade()?))).collect();
    // Retire what changed or went away: no producer will send to it any more (its input ends once drained), a
    // source is told to stop; a replacement starts once it has ended.
    let wanted: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let retiring: BTreeSet<String> =
        wiring.slots.keys().filter(|name| !rollout.unchanged.contains(name)).cloned().collect();
    // Producers that start a path to another machine in this rollout: that path adopts their retired paths' logs.
    let new_paths_of: BTreeSet<String> = built
        .iter()
        .filter(|(info, ..)| info.role == "path out" && !wiring.slots.contains_key(&info.name))
        .filter_map(|(_, _, inputs, ..)| inputs.first().map(|(producer, _)| producer.clone()))
        .collect();
    let left_over = left_over_paths(&wiring, &retiring, &wanted, &new_paths_of, options);
    let mut predecessors = BTreeMap::new();
    for name in retiring.iter().cloned() {
        let Some(slot) = wiring.slots.remove(&name) else { continue };
        if !wanted.contains(name.as_str())
            && hand_over.contains(&name)
            && let Some(flag) = &slot.hand_over
        {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
        slot.stop.send_replace(true);
        wiring.retired.push(slot.stop);
        if wanted.contains(name.as_str()) {
            predecessors.insert(name.clone(), slot.done);
            rollout.restarted.push(name);
        } else {
            shared.metrics.remove(&name);
            rollout.stopped.push(name);
        }
    }
    wiring.retired.retain(|stop| stop.receiver_count() > 0);

    let mut routes_of = |wiring: &mut Wiring, producer: &str| -> Routes {
        if let Some(routes) = held.get(producer) {
            return routes.clone();
        }
        let routes = wiring.routes.get(producer).and_then(Weak::upgrade).unwrap_or_else(|| {
            let routes = Routes::default();
            wiring.routes.insert(producer.to_string(), Arc::downgrade(&routes));
            routes
        });
        held.insert(producer.to_string(), routes.clone());
        routes
    };
    let mut pending = Vec::new();
    let mut additions: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    let mut arrivals: BTreeMap<String, Vec<(String, mpsc::Sender<Delivery>, usize)>> = BTreeMap::new();
    for (info, metrics_kind, inputs, output, fingerprint, feed, component) in built {
        let name = info.name.clone();
        let (stop, shutdown) = watch::channel(wiring.stopping);
        let context = Context {
            component: name.clone(),
            metrics: shared.metrics.register(&name, &metrics_kind),
            shutdown,
            dead_letters: shared.dead_letters.clone(),
        };
        let output = output.map(|producer| Output::new(routes_of(&mut wiring, &producer), context.metrics.clone()));
        let mut sender = None;
        let mut runner = match (component, output) {
            (Built::Source(source), Some(output)) => Runner::Source(source, output),
            (Built::Operator(operator), Some(output)) => {
                let (input, receiver) = mpsc::channel(options.channel_capacity.max(1));
                sender = Some(input);
                Runner::Operator(operator, receiver, output)
            }
            (Built::Sink(sink), _) => {
                let (input, receiver) = mpsc::channel(options.channel_capacity.max(1));
                sender = Some(input);
                Runner::Sink(sink, receiver)
            }
            (Built::Source(_) | Built::Operator(_), None) => unreachable!("every producer has an output"),
        };
        let checkpoint = match (&mut runner, &options.data_dir) {
            // Generators that make up history replay it fast; there is nothing to take up after a crash.
            (Runner::Operator(operator, ..), Some(data_dir)) if operator.keeps_state() && !options.fast_generators => {
                let checkpoint = Checkpoint::new(data_dir, &name, &fingerprint)
                    .copied_by(options.checkpoint_copies.clone())
                    .leased(options.lease.clone());
                // An instance that replaces a running one starts empty: its predecessor drains and emits what it
                // holds (and removes its checkpoint) before this one starts.
                if !predecessors.contains_key(&name) && checkpoint.take_up(operator.as_mut(), &context) {
                    rollout.resumed.push(name.clone());
                }
                Some(checkpoint)
            }
            _ => None,
        };
        if let Some(sender) = &sender {
            for (producer, port) in &inputs {
                routes_of(&mut wiring, producer);
                // A consumer new here whose producer's path that led elsewhere retires now takes what that path
                // left first (see `take_left_over_first`).
                if !predecessors.contains_key(&name) && left_over.contains_key(producer) {
                    arrivals.entry(producer.clone()).or_default().push((name.clone(), sender.clone(), *port));
                    continue;
                }
                additions.entry(producer.clone()).or_default().push(Route {
                    consumer: name.clone(),
                    sender: sender.clone(),
                    port: *port,
                });
            }
        }
        let (done, done_receiver) = watch::channel(false);
        let hand_over = checkpoint.as_ref().map(Checkpoint::hand_over_flag);
        wiring.slots.insert(
            name.clone(),
            Slot {
                info,
                fingerprint,
                inputs,
                sender: sender.map(|sender| sender.downgrade()),
                stop,
                done: done_receiver,
                feed,
                hand_over,
            },
        );
        if !predecessors.contains_key(&name) {
            rollout.started.push(name.clone());
        }
        pending.push(Pending { task: Task { context, runner, checkpoint }, after: predecessors.remove(&name), done });
    }
    for (producer, consumers) in arrivals {
        let mut live = Vec::new();
        for (consumer, sender, port) in consumers {
            let (hop, waiting) = mpsc::channel(options.channel_capacity.max(1));
            additions.entry(producer.clone()).or_default().push(Route { consumer, sender: hop, port });
            live.push((waiting, sender, port));
        }
        let directories = left_over.get(&producer).cloned().unwrap_or_default();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(crate::remote::take_left_over_first(directories, live));
        }
    }
    // Each producer's routes change in one step: a batch goes either to the instance being replaced or to its
    // replacement, never to both and never to neither.
    for (producer, routes) in &wiring.routes {
        let Some(routes) = routes.upgrade() else { continue };
        let mut routes = lock(&routes);
        routes.retain(|route| !retiring.contains(&route.consumer));
        routes.extend(additions.remove(producer).unwrap_or_default());
    }
    // A consumer that runs on keeps its routes from producers whose routes were made anew (a path from another
    // machine that came back, say).
    for name in &rollout.unchanged {
        let Some(slot) = wiring.slots.get(name) else { continue };
        let Some(sender) = slot.sender.as_ref().and_then(mpsc::WeakSender::upgrade) else { continue };
        for (producer, port) in &slot.inputs {
            let Some(routes) = held.get(producer) else { continue };
            let mut routes = lock(routes);
            if !routes.iter().any(|route| route.consumer == *name && route.port == *port) {
                routes.push(Route { consumer: name.clone(), sender: sender.clone(), port: *port });
            }
        }
    }
    wiring.order = order;
    for task in pending {
        // The receiving end lives as long as the wiring (it ends only with `ended`, checked above).
        let _ = wiring.spawn.send(task);
    }
    drop(held);
    Ok(rollout)
}

/// The logs that paths of a local producer retiring in this rollout leave, by producer: a consumer that comes to
/// this machine in the same rollout takes them first (the consumer those paths led to moved here). Not when the
/// producer also starts a path to another machine: that path adopts them (`RemoteSink`), for wherever they went;
/// but a waiting path's log goes to its consumer whenever that consumer comes here.
fn left_over_paths(
    wiring: &Wiring,
    retiring: &BTreeSet<String>,
    wanted: &BTreeSet<&str>,
    new_paths_of: &BTreeSet<String>,
    options: &PipelineOptions,
) -> BTreeMap<String, Vec<std::path::PathBuf>> {
    let Some(data_dir) = &options.data_dir else { return BTreeMap::new() };
    let path_out = |info: &ComponentInfo| info.role == "path out";
    let mut left_over: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for name in retiring.iter().filter(|name| !wanted.contains(name.as_str())) {
        let Some(slot) = wiring.slots.get(name).filter(|slot| path_out(&slot.info)) else { continue };
        let Some((producer, _)) = slot.inputs.first() else { continue };
        let directory = crate::remote::log_directory(data_dir, name);
        // A waiting path's log is its consumer's alone: it takes it when it comes here, new paths or not.
        let taken_here = match crate::remote::waiting_for(name) {
            Some(consumer) => wanted.contains(consumer),
            None => !new_paths_of.contains(producer),
        };
        if wanted.contains(producer.as_str()) && taken_here && directory.exists() {
            left_over.entry(producer.clone()).or_default().push(directory);
        }
    }
    left_over
}
