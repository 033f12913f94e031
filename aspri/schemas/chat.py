"""Events the engine records in ``chat:{chatId}`` besides messages: turns and resets."""
