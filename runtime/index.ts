/**
 * `ringpool`: the public entry (main thread). Everything not exported here is internal.
 */
export { createRuntime, Runtime } from './runtime.js';
export { mailbox } from './typed.js';
export type { AnyMailboxes, MailboxName, MailboxType, MailboxTypes, ModuleTypes, TypedHandler, TypesOf } from './typed.js';
export type { ActorRef, ActorRefOptions, AskOptions, CloseOptions, CloseReport, DeadLetterEvent, RuntimeEvents, SendAsyncOptions, SendBatchAsyncOptions } from './runtime.js';
export type { ActorDefinition, ActorMessage, ActorMethods, ActorReply, KeyedMethods } from '../workers/actor.js';
export type { HandlerTimeoutEvent, MailboxStats, ScaleEvent, WorkerCrashEvent } from './mailbox/index.js';
export type { InspectPage, InspectedMessage, MessageState } from './mailbox/inspect.js';
export { Outcome, DEAD_LETTER_REASONS } from './outcome.js';
export type { AcceptedMessage, OutcomeBatch, OutcomeKind, OutcomeListener } from './outcome.js';
export type { MessageStore, StoredMessage } from './store/store.js';
export type { MessageSource, SourceIntake } from './source/source.js';
export type { RedisSourceOptions, StreamDeadLetter, StreamDeadLetters, StreamStats, FleetStats } from './source/stream.js';
export { decide as autoscalePolicy, autoscaleDefaults } from './autoscale-policy.js';
export { decideFleet as fleetPolicy, fleetDefaults } from './fleet-policy.js';
export type { FleetConfig, FleetDecision, FleetObservation, FleetRecommendation } from './fleet-policy.js';
export type { AutoscaleConfig, Decision, Observation, Recommendation } from './autoscale-policy.js';
export type { DeadLetter, DeadLetterReason, DeadLetters } from './dead-letters.js';
export { mailboxDefaults, runtimeDefaults } from './options.js';
export type { AutoscaleOptions, BackoffOptions, MailboxOptions, RuntimeOptions, TracingOptions } from './options.js';
export { ErrorCodes, RingpoolError } from './shared/errors.js';
export type { ErrorCode, ErrorInfo } from './shared/errors.js';
export type { Codec, CodecOption } from './shared/codec.js';
export type { BatchOptions, SendOptions } from './shared/producer.js';
export type { WorkerStats } from './shared/protocol.js';
export type { PoolStats } from './pool/shared.js';
export type { PoolOptions } from './pool/options.js';
export type { SendMessage as TraceSendMessage, ProcessMessage as TraceProcessMessage } from './shared/trace-channels.js';
