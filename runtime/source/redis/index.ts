/**
 * `ringpool/redis`: Redis Streams for ringpool. A mailbox reads a stream
 * through its options (`source: { redis: { url, stream, group } }`, in the
 * main entry); this entry adds the producer for a process that runs no
 * handlers, and the types of the stream's dead letters and stats.
 */
export { redisProducer, RedisProducer, PAYLOAD_FIELD, type RedisProducerOptions, type ProducerSendOptions, type ProducerKeyOptions } from './producer.js';
export { KEY_FIELD } from './adds.js';
export { HEADERS_FIELD } from './fields.js';
export { partitionOf, MAX_PARTITIONS } from '../../shared/partition.js';
export type { PartitionStats } from '../stream.js';
export type { RedisSourceOptions } from './options.js';
export type { StreamDeadLetter, StreamDeadLetters } from './dead.js';
export type { StreamStats } from './source.js';
