"""The game's screens: title, scene, day choice, save/load, settings, ending."""
