-- Run by the postgres image on its first start (an empty volume) as the banshi role, after
-- it made the database banshi: the second database, Rasa's tracker store
-- (BANSHI_RASA_TRACKER_URL), as banshi/production.py makes both on one machine.
CREATE DATABASE rasa;
