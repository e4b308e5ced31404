//! The Unreal-like process: what its threads, logs and metrics record, tick by tick.
//!
//! Times are ticks of the Windows performance counter (10 MHz), relative to the process start
//! (`REL` values); events carry absolute ticks (`start_ticks + rel`), as `FPlatformTime::Cycles64`
//! gives them.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

use crate::plugin::{
    LogEvent, LogMetadata, MetricEvent, MetricMetadata, PropertySet, SpanLocation, SpanMetadata,
    Str, ThreadEvent,
};

pub const TSC_FREQUENCY: i64 = 10_000_000;
pub const START_TICKS: u64 = 86_412_937_120;
/// 1 ms in ticks.
const MS: u64 = 10_000;
/// One game frame: 16.6667 ms.
const FRAME: u64 = 166_667;
pub const FRAMES: u64 = 3;
/// The flush monitor's period: every stream with events is flushed every 12 ms.
pub const FLUSH_PERIOD: u64 = 12 * MS;
/// The last flush (shutdown), after every event.
pub const SHUTDOWN: u64 = 72 * MS;

/// Addresses in a 64-bit Windows process: static objects and string literals in the image,
/// `FNameEntry`s and property sets on the heap. Identical literals share one address (the
/// linker pools them); one `FName` has one entry.
pub struct Addresses {
    code: u64,
    rdata: u64,
    names: u64,
    heap: u64,
    literals: HashMap<(u8, Vec<u8>), u64>,
    fnames: HashMap<String, u64>,
}

impl Default for Addresses {
    fn default() -> Self {
        Addresses {
            code: 0x7ff7_2c4a_1000,
            rdata: 0x7ff7_2b90_0000,
            names: 0x0000_01f8_3a20_0000,
            heap: 0x0000_01f8_4c10_0000,
            literals: HashMap::new(),
            fnames: HashMap::new(),
        }
    }
}

impl Addresses {
    fn literal(&mut self, codec: u8, bytes: &[u8]) -> u64 {
        let next = &mut self.rdata;
        *self
            .literals
            .entry((codec, bytes.to_vec()))
            .or_insert_with(|| {
                let at = *next;
                // Terminating NUL, 8-byte aligned.
                *next += (bytes.len() as u64 + 2).div_ceil(8) * 8;
                at
            })
    }

    pub fn ansi(&mut self, bytes: &[u8]) -> Str {
        Str::ansi(self.literal(0, bytes), bytes)
    }

    pub fn wide(&mut self, text: &str) -> Str {
        let probe = Str::wide(0, text);
        Str::wide(self.literal(1, &probe.bytes), text)
    }

    pub fn fname(&mut self, text: &str) -> Str {
        let next = &mut self.names;
        let entry = *self.fnames.entry(text.to_string()).or_insert_with(|| {
            let at = *next;
            *next += 0x30;
            at
        });
        Str::fname(entry, text)
    }

    pub fn static_object(&mut self) -> u64 {
        let at = self.code;
        self.code += 0x40;
        at
    }

    pub fn heap_object(&mut self) -> u64 {
        let at = self.heap;
        self.heap += 0x80;
        at
    }

    /// `MICROMEGAS_SPAN_SCOPE(target, name)`: a static `SpanMetadata` (`const char*` members,
    /// `__FILE__`, `__LINE__`).
    pub fn span(&mut self, target: &str, name: &[u8], file: &str, line: u32) -> Arc<SpanMetadata> {
        Arc::new(SpanMetadata {
            id: self.static_object(),
            name: self.ansi(name),
            target: self.ansi(target.as_bytes()),
            file: self.ansi(file.as_bytes()),
            line,
        })
    }

    /// `MICROMEGAS_SPAN_NAME(target, name)` / `MICROMEGAS_SPAN_UOBJECT`: a static
    /// `SpanLocation`; the name travels in each event.
    pub fn location(&mut self, target: &str, file: &str, line: u32) -> Arc<SpanLocation> {
        Arc::new(SpanLocation {
            id: self.static_object(),
            target: self.ansi(target.as_bytes()),
            file: self.ansi(file.as_bytes()),
            line,
        })
    }
}

/// One span the exporter must show.
#[derive(Debug, Clone)]
pub struct ExpectedSpan {
    pub name: String,
    pub target: String,
    pub file: String,
    pub line: u32,
    pub depth: usize,
    pub begin_ticks: u64,
    pub end_ticks: u64,
}

pub enum Scope {
    Static(Arc<SpanMetadata>),
    Named(Arc<SpanLocation>, Str),
}

pub struct ThreadSim {
    /// `FThreadManager::GetThreadName`; `None` → the sink's placeholder.
    pub name: Option<&'static str>,
    /// `FPlatformTLS::GetCurrentThreadId()`.
    pub thread_id: u32,
    /// When the thread stream (and its first block) was allocated.
    pub created: u64,
    pub events: Vec<ThreadEvent>,
    pub spans: Vec<ExpectedSpan>,
    depth: usize,
}

/// The name `HttpEventSink::OnInitThreadStream` gives a thread without one.
pub const UNNAMED_THREAD: &str = "UnnamedThread";

impl ThreadSim {
    fn new(name: Option<&'static str>, thread_id: u32, created: u64) -> Self {
        ThreadSim {
            name,
            thread_id,
            created,
            events: Vec::new(),
            spans: Vec::new(),
            depth: 0,
        }
    }

    pub fn thread_name(&self) -> &'static str {
        self.name.unwrap_or(UNNAMED_THREAD)
    }

    fn push(&mut self, event: ThreadEvent) {
        if let Some(last) = self.events.last() {
            assert!(last.ticks() <= event.ticks(), "events out of order");
        }
        self.events.push(event);
    }

    /// A span from `begin` to `end` (relative ticks), `inner` emitting its children.
    fn scope(&mut self, scope: &Scope, begin: u64, end: u64, inner: impl FnOnce(&mut Self)) {
        let (b, e) = (START_TICKS + begin, START_TICKS + end);
        let (name, target, file, line) = match scope {
            Scope::Static(desc) => {
                self.push(ThreadEvent::Begin(desc.clone(), b));
                (&desc.name, &desc.target, &desc.file, desc.line)
            }
            Scope::Named(loc, name) => {
                self.push(ThreadEvent::BeginNamed(loc.clone(), b, name.clone()));
                (name, &loc.target, &loc.file, loc.line)
            }
        };
        let index = self.spans.len();
        self.spans.push(ExpectedSpan {
            name: name.text.clone(),
            target: target.text.clone(),
            file: file.text.clone(),
            line,
            depth: self.depth,
            begin_ticks: b,
            end_ticks: e,
        });
        self.depth += 1;
        inner(self);
        self.depth -= 1;
        match scope {
            Scope::Static(desc) => self.push(ThreadEvent::End(desc.clone(), e)),
            Scope::Named(loc, name) => {
                self.push(ThreadEvent::EndNamed(loc.clone(), e, name.clone()))
            }
        }
        debug_assert!(self.spans[index].end_ticks == e);
    }

    fn leaf(&mut self, scope: &Scope, begin: u64, end: u64) {
        self.scope(scope, begin, end, |_| {});
    }
}

pub struct Process {
    pub threads: Vec<ThreadSim>,
    pub logs: Vec<LogEvent>,
    pub metrics: Vec<MetricEvent>,
}

const LAUNCH: &str = r"D:\build\UE5\Engine\Source\Runtime\Launch\Private\LaunchEngineLoop.cpp";
const GAME_ENGINE: &str = r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\GameEngine.cpp";
const LEVEL_TICK: &str = r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\LevelTick.cpp";
const TICK_TASKS: &str = r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\TickTaskManager.cpp";
const ACTOR: &str = r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\Actor.cpp";
const MOVEMENT: &str =
    r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\Components\CharacterMovementComponent.cpp";
const WORLD_COLLISION: &str =
    r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\Collision\WorldCollision.cpp";
const PHYS_SCENE: &str =
    r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\PhysicsEngine\PhysScene_Chaos.cpp";
const ANIM: &str = r"D:\build\UE5\Engine\Source\Runtime\Engine\Private\Animation\AnimInstance.cpp";
const SLATE: &str =
    r"D:\build\UE5\Engine\Source\Runtime\Slate\Private\Framework\Application\SlateApplication.cpp";
const RENDERING_THREAD: &str =
    r"D:\build\UE5\Engine\Source\Runtime\RenderCore\Private\RenderingThread.cpp";
const DEFERRED: &str =
    r"D:\build\UE5\Engine\Source\Runtime\Renderer\Private\DeferredShadingRenderer.cpp";
const MESH_DRAW: &str = r"D:\build\UE5\Engine\Source\Runtime\Renderer\Private\MeshDrawCommands.cpp";
const RHI_THREAD: &str = r"D:\build\UE5\Engine\Source\Runtime\RHI\Private\RHICommandList.cpp";
const QUEUED_THREAD: &str =
    r"D:\build\UE5\Engine\Source\Runtime\Core\Private\HAL\ThreadingBase.cpp";
const ASYNC_LOADING: &str =
    r"D:\build\UE5\Engine\Source\Runtime\CoreUObject\Private\Serialization\AsyncLoading2.cpp";
const GAME_MODE: &str = r"D:\build\Arena\Source\Arena\Private\ArenaGameMode.cpp";
const SINK: &str = r"D:\build\UE5\Engine\Plugins\MicromegasTelemetrySink\Source\MicromegasTelemetrySink\Private\HttpEventSink.cpp";

/// Frame `k` of the game thread begins at this relative tick.
fn game_frame(k: u64) -> u64 {
    4 * MS + k * FRAME
}

/// Frame `k` of the render thread begins when the game thread hands it over.
fn render_frame(k: u64) -> u64 {
    game_frame(k) + 150_000
}

pub fn run(addresses: &mut Addresses) -> Process {
    let a = addresses;

    // --- GameThread: 8 levels deep, plain spans named by __FUNCTION__ and named spans whose
    // names are FNames (ANSI and wide entries) and a wide TEXT() literal.
    let guarded_main = Scope::Static(a.span("Launch", b"GuardedMain", LAUNCH, 174));
    let engine_tick = Scope::Static(a.span("Launch", b"FEngineLoop::Tick", LAUNCH, 5631));
    let game_tick = Scope::Static(a.span("Engine", b"UGameEngine::Tick", GAME_ENGINE, 1733));
    let world_tick = Scope::Static(a.span("Engine", b"UWorld::Tick", LEVEL_TICK, 1418));
    let tick_group = a.location("Engine", TICK_TASKS, 1890);
    let tick_actor = a.location("Engine", ACTOR, 1108);
    let movement = Scope::Static(a.span(
        "Engine",
        b"UCharacterMovementComponent::TickComponent",
        MOVEMENT,
        1466,
    ));
    let sweep_location = a.location("Physics", WORLD_COLLISION, 311);
    let sweep = Scope::Named(sweep_location, a.wide("物理クエリ: Sweep"));
    let wait_phys =
        Scope::Static(a.span("Physics", b"FPhysScene::WaitPhysScenes", PHYS_SCENE, 1762));
    let anim = Scope::Static(a.span("Anim", b"UAnimInstance::UpdateAnimation", ANIM, 562));
    let slate = Scope::Static(a.span("Slate", b"FSlateApplication::Tick", SLATE, 1583));
    let pre_physics = Scope::Named(tick_group.clone(), a.fname("TG_PrePhysics"));
    let during_physics = Scope::Named(tick_group.clone(), a.fname("TG_DuringPhysics"));
    let post_physics = Scope::Named(tick_group, a.fname("TG_PostPhysics"));
    let player = Scope::Named(tick_actor.clone(), a.fname("BP_PlayerCharacter_C_0"));
    let tower = Scope::Named(tick_actor.clone(), a.fname("Wächterturm_C_1"));
    let door = Scope::Named(tick_actor, a.fname("BP_Door_C_3"));

    let mut game = ThreadSim::new(Some("GameThread"), 21_496, 500);
    let last_game_end = game_frame(FRAMES - 1) + 150_000;
    game.scope(&guarded_main, 12_000, last_game_end + 5_000, |t| {
        for k in 0..FRAMES {
            let g = game_frame(k);
            t.scope(&engine_tick, g, g + 150_000, |t| {
                t.scope(&game_tick, g + 2_000, g + 138_000, |t| {
                    t.scope(&world_tick, g + 4_000, g + 120_000, |t| {
                        t.scope(&pre_physics, g + 5_000, g + 60_000, |t| {
                            t.scope(&player, g + 6_000, g + 30_000, |t| {
                                t.scope(&movement, g + 7_000, g + 28_000, |t| {
                                    t.leaf(&sweep, g + 10_000, g + 20_000)
                                })
                            });
                            t.scope(&tower, g + 31_000, g + 58_000, |t| {
                                t.scope(&movement, g + 32_000, g + 55_000, |t| {
                                    t.leaf(&sweep, g + 35_000, g + 50_000)
                                })
                            });
                        });
                        t.scope(&during_physics, g + 61_000, g + 90_000, |t| {
                            t.leaf(&wait_phys, g + 62_000, g + 88_000)
                        });
                        t.scope(&post_physics, g + 91_000, g + 118_000, |t| {
                            t.scope(&door, g + 92_000, g + 116_000, |t| {
                                t.leaf(&anim, g + 93_000, g + 110_000)
                            })
                        });
                    })
                });
                t.leaf(&slate, g + 139_000, g + 149_000);
            })
        }
    });

    // --- RenderThread: named spans with wide TEXT() names, one of them non-ASCII.
    let render_main =
        Scope::Static(a.span("RenderCore", b"RenderingThreadMain", RENDERING_THREAD, 312));
    let render = Scope::Static(a.span(
        "Renderer",
        b"FDeferredShadingSceneRenderer::Render",
        DEFERRED,
        1187,
    ));
    let pass = a.location("Renderer", DEFERRED, 1240);
    let shadows = Scope::Named(pass.clone(), a.wide("ShadowDepths"));
    let base_pass = Scope::Named(pass.clone(), a.wide("BasePass"));
    let lighting = Scope::Named(pass, a.wide("Éclairage différé"));
    let submit =
        Scope::Static(a.span("Renderer", b"FMeshDrawCommand::SubmitDraw", MESH_DRAW, 1301));
    let mut render_thread = ThreadSim::new(Some("RenderThread"), 18_232, 15_000);
    render_thread.scope(&render_main, 15_500, SHUTDOWN - 20_000, |t| {
        for k in 0..FRAMES {
            let r = render_frame(k);
            t.scope(&render, r + 1_000, r + 141_000, |t| {
                t.leaf(&shadows, r + 2_000, r + 30_000);
                t.scope(&base_pass, r + 31_000, r + 90_000, |t| {
                    t.leaf(&submit, r + 32_000, r + 60_000);
                    t.leaf(&submit, r + 61_000, r + 89_000);
                });
                t.leaf(&lighting, r + 91_000, r + 140_000);
            });
        }
    });

    // --- RHIThread: named spans whose names are `const char*` (ANSI references).
    let rhi_main = Scope::Static(a.span("RHI", b"FRHIThread::Run", RHI_THREAD, 88));
    let execute = Scope::Static(a.span(
        "RHI",
        b"FRHICommandListExecutor::ExecuteList",
        RHI_THREAD,
        512,
    ));
    let rhi_location = a.location("RHI", RHI_THREAD, 530);
    let rhi_submit = Scope::Named(rhi_location.clone(), a.ansi(b"RHI Submit"));
    let present = Scope::Named(rhi_location, a.ansi(b"D3D12 Present"));
    let mut rhi = ThreadSim::new(Some("RHIThread"), 20_084, 16_000);
    rhi.scope(&rhi_main, 16_500, SHUTDOWN - 15_000, |t| {
        for k in 0..FRAMES {
            let r = render_frame(k);
            t.scope(&execute, r + 20_000, r + 160_000, |t| {
                t.leaf(&rhi_submit, r + 21_000, r + 120_000);
                t.leaf(&present, r + 121_000, r + 158_000);
            });
        }
    });

    // --- A pool thread without a name: the sink names its stream "UnnamedThread". One span
    // name is an ANSI literal with a CP-1252 byte (é = 0xE9), which Micromegas reads as UTF-8
    // and so shows as U+FFFD.
    let worker_run = Scope::Static(a.span("Core", b"FQueuedThread::Run", QUEUED_THREAD, 431));
    let decompress = Scope::Static(a.span(
        "AsyncLoading",
        b"AsyncLoading::D\xe9compresser",
        ASYNC_LOADING,
        2871,
    ));
    let load_location = a.location("AsyncLoading", ASYNC_LOADING, 2890);
    let rock_mesh = Scope::Named(load_location.clone(), a.fname("SM_Rock_01"));
    let rock_texture = Scope::Named(load_location, a.fname("T_Rock_01_D"));
    let mut unnamed = ThreadSim::new(None, 7_716, 30_000);
    unnamed.scope(&worker_run, 31_000, 431_000, |t| {
        t.scope(&decompress, 40_000, 140_000, |t| {
            t.leaf(&rock_mesh, 50_000, 130_000)
        });
        t.scope(&decompress, 200_000, 330_000, |t| {
            t.leaf(&rock_texture, 210_000, 320_000)
        });
    });

    // --- Log and metrics streams.
    let empty_set = Arc::new(PropertySet {
        id: a.heap_object(),
        properties: vec![],
    });
    let map_set = Arc::new(PropertySet {
        id: a.heap_object(),
        properties: vec![(a.fname("map"), a.fname("L_Arena"))],
    });
    let frame_log = Arc::new(LogMetadata {
        id: a.static_object(),
        target: a.wide("LogArena"),
        msg: a.wide(""),
        file: a.ansi(GAME_MODE.as_bytes()),
        line: 212,
        level: 4,
    });
    let mut logs = vec![
        LogEvent::Interop {
            time: START_TICKS + 600,
            level: 4,
            target: a.fname("LogInit"),
            properties: empty_set.clone(),
            msg: "Build: ++UE5+Release-5.4-CL-33043543".into(),
        },
        LogEvent::Interop {
            time: START_TICKS + 41_000,
            level: 3,
            target: a.fname("LogStreaming"),
            properties: empty_set.clone(),
            msg: "Fichier manquant : /Game/Maps/L_Arena_Décor".into(),
        },
    ];
    for k in 0..FRAMES {
        logs.push(LogEvent::Tagged {
            desc: frame_log.clone(),
            properties: map_set.clone(),
            time: START_TICKS + game_frame(k) + 150_500,
            msg: format!("Frame {k} done"),
        });
    }
    let frame_time = Arc::new(MetricMetadata {
        id: a.static_object(),
        lod: 2,
        name: a.wide("FrameTime"),
        unit: a.wide("ms"),
        target: a.ansi(b"Engine"),
        file: a.ansi(LAUNCH.as_bytes()),
        line: 5702,
    });
    let queue_size = Arc::new(MetricMetadata {
        id: a.static_object(),
        lod: 1,
        name: a.wide("QueueSize"),
        unit: a.wide("count"),
        target: a.ansi(b"MicromegasTelemetrySink"),
        file: a.ansi(SINK.as_bytes()),
        line: 289,
    });
    let mut metrics = vec![MetricEvent::Integer {
        desc: queue_size.clone(),
        properties: empty_set.clone(),
        value: 3,
        time: START_TICKS + 100_000,
    }];
    for k in 0..FRAMES {
        metrics.push(MetricEvent::Float {
            desc: frame_time.clone(),
            properties: map_set.clone(),
            value: 16.25 + k as f64 * 0.5,
            time: START_TICKS + game_frame(k) + 150_200,
        });
    }
    metrics.push(MetricEvent::Integer {
        desc: queue_size,
        properties: empty_set,
        value: 7,
        time: START_TICKS + 400_000,
    });

    logs.sort_by_key(log_ticks);
    metrics.sort_by_key(metric_ticks);
    Process {
        threads: vec![game, render_thread, rhi, unnamed],
        logs,
        metrics,
    }
}

pub fn log_ticks(e: &LogEvent) -> u64 {
    match e {
        LogEvent::Interop { time, .. } | LogEvent::Tagged { time, .. } => *time,
    }
}

pub fn metric_ticks(e: &MetricEvent) -> u64 {
    match e {
        MetricEvent::Integer { time, .. } | MetricEvent::Float { time, .. } => *time,
    }
}

pub fn spans_json(spans: &[ExpectedSpan]) -> Value {
    Value::Array(
        spans
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "depth": s.depth,
                    "target": s.target,
                    "file": s.file,
                    "line": s.line,
                    "begin_ticks": s.begin_ticks,
                    "end_ticks": s.end_ticks,
                })
            })
            .collect(),
    )
}

/// The log entries an export must show: time, level, target, message, source, properties.
pub fn logs_json(logs: &[LogEvent]) -> Value {
    let properties = |set: &PropertySet| -> Vec<Value> {
        (set.properties.iter())
            .map(|(k, v)| json!([k.text, v.text]))
            .collect()
    };
    Value::Array(
        logs.iter()
            .map(|e| match e {
                LogEvent::Interop {
                    time,
                    level,
                    target,
                    properties: set,
                    msg,
                } => json!({
                    "ticks": time, "level": level, "target": target.text, "msg": msg,
                    "file": "", "line": 0, "properties": properties(set),
                }),
                LogEvent::Tagged {
                    desc,
                    properties: set,
                    time,
                    msg,
                } => json!({
                    "ticks": time, "level": desc.level, "target": desc.target.text, "msg": msg,
                    "file": desc.file.text, "line": desc.line, "properties": properties(set),
                }),
            })
            .collect(),
    )
}

/// The measures an export must show: time, series (name, unit, target, properties), value.
pub fn metrics_json(metrics: &[MetricEvent]) -> Value {
    let measure = |desc: &MetricMetadata, set: &PropertySet, time: u64, value: f64, integer| {
        let properties: Vec<Value> = (set.properties.iter())
            .map(|(k, v)| json!([k.text, v.text]))
            .collect();
        json!({
            "ticks": time, "name": desc.name.text, "unit": desc.unit.text,
            "target": desc.target.text, "value": value, "integer": integer,
            "properties": properties,
        })
    };
    Value::Array(
        metrics
            .iter()
            .map(|e| match e {
                MetricEvent::Integer {
                    desc,
                    properties,
                    value,
                    time,
                } => measure(desc, properties, *time, *value as f64, true),
                MetricEvent::Float {
                    desc,
                    properties,
                    value,
                    time,
                } => measure(desc, properties, *time, *value, false),
            })
            .collect(),
    )
}
