/**
 * `ringpool/redis`: Redis Streams for ringpool (issue #16, in progress). So
 * far the producer for a process that runs no handlers; the mailbox source
 * (a consumer group feeding a mailbox) comes next.
 */
export { redisProducer, RedisProducer, PAYLOAD_FIELD, type RedisProducerOptions } from './producer.js';
