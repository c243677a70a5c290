// The whole kelp API in one include.
#pragma once

#include "kelp/connection.hpp"
#include "kelp/consumer.hpp"
#include "kelp/entities.hpp"
#include "kelp/errors.hpp"
#include "kelp/eventloop.hpp"
#include "kelp/hub.hpp"
#include "kelp/message.hpp"
#include "kelp/producer.hpp"
#include "kelp/simple_queue.hpp"
