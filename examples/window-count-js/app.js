// Tutorial 5 in JavaScript: the window count (counter.js) as a processor component.
import { cancelTimer, get, put, remove, scan, setTimer } from "weir:plugin/keyed-state@0.1.0";
import { defineProcessor } from "weir-plugin";
import { windowCount } from "./counter.js";

export const { init, eventTimes, process, closeWindows, fireTimers } = defineProcessor(windowCount, {
  get,
  put,
  remove,
  scan,
  setTimer,
  cancelTimer,
});
