"""Every French string of the police console, in one place.

Templates read them as `t.NAME`; the page scripts get `JS` as a JSON block.
Code and comments stay in English.
"""

from __future__ import annotations

APP_TITLE = "TGD — Console police"
APP_SHORT = "TGD"

# Navigation and layout
NAV_ALARMS = "Alarmes"
NAV_DEVICES = "Appareils"
NAV_AUDIT = "Journal d'audit"
NAV_SMS = "SMS reçus"
NAV_LOGOUT = "Se déconnecter"
LOGGED_IN_AS = "Connecté :"
SEARCH_LABEL = "Numéro de l'appelant"
SEARCH_PLACEHOLDER = "ex. 75 10 01"
SEARCH_BUTTON = "Rechercher"
SKIP_TO_CONTENT = "Aller au contenu"

ROLE_LABELS = {
    "operator": "opérateur",
    "supervisor": "superviseur",
    "technician": "technicien",
    "admin": "administrateur",
}

# Login
LOGIN_TITLE = "Connexion"
LOGIN_USERNAME = "Identifiant"
LOGIN_PASSWORD = "Mot de passe"
LOGIN_SUBMIT = "Se connecter"
LOGIN_FAILED = "Identifiant ou mot de passe incorrect."
LOGIN_RATE_LIMITED = "Trop de tentatives. Réessayez dans {minutes} min."
LOGIN_REQUIRED = "Veuillez vous connecter."
LOGGED_OUT = "Vous êtes déconnecté."
SESSION_EXPIRED = "Session expirée : reconnectez-vous."

# Errors
CSRF_FAILED = "Formulaire expiré ou invalide : rechargez la page et recommencez."
FORBIDDEN_TITLE = "Accès refusé"
FORBIDDEN_TEXT = "Votre rôle ne permet pas d'afficher cette page."
NOT_FOUND_TITLE = "Introuvable"
NOT_FOUND_TEXT = "Cette page n'existe pas ou plus."
GO_TO_LOGIN = "Aller à la page de connexion"
BACK_HOME = "Retour aux alarmes"

# Alarm states
STATE_LABELS = {
    "received": "Reçue",
    "acknowledged": "Prise en charge",
    "closed": "Clôturée",
}
TEST_BADGE = "TEST"

# Live alarm list
ALARMS_TITLE = "Alarmes en cours"
ALARMS_EMPTY = "Aucune alarme en cours."
ALARMS_RECENT_CLOSED = "Alarmes clôturées récemment"
OVERVIEW_TITLE = "Carte des alarmes en cours"
COL_STATE = "État"
COL_SPECIAL_NUMBER = "N° spécial"
COL_PERSON = "Personne protégée"
COL_ADDRESS = "Adresse"
COL_TRIGGERED = "Déclenchée"
COL_LAST_FIX = "Dernière position"
COL_CHANNELS = "Canaux"
COL_DEVICE = "Appareil"
NEW_ALARM_BANNER = "NOUVELLE ALARME"
OPEN_ALARM = "Ouvrir"
LIVE_CONNECTED = "En direct"
LIVE_RECONNECTING = "Connexion perdue — reconnexion…"
SOUND_ON = "Son activé"
SOUND_OFF = "Son coupé — activer"
SOUND_BLOCKED = "Son bloqué par le navigateur — cliquer pour l'activer"
SOUND_HELP = "Le signal sonore se répète tant qu'une alarme n'est pas prise en charge."
NO_CASE = "Aucun dossier associé"
NO_FIX = "Aucune position"
COL_CLOSED = "Clôturée"

# Fix methods and ages
METHOD_LABELS = {"G": "GNSS", "C": "cellule", "N": "aucune"}
ACCURACY = "précision ±{acc} m"
STALE = "ANCIENNE"

# Alarm page
ALARM_TITLE = "Alarme"
CASE_TITLE = "Personne protégée"
CASE_REFERENCE = "Référence judiciaire"
CASE_NAME = "Nom"
CASE_ADDRESS = "Adresse"
CASE_NOTES = "Consignes pour la police"
DEVICE_TITLE = "Appareil"
DEVICE_ID = "Identifiant"
SPECIAL_NUMBER = "Numéro spécial"
BATTERY = "Batterie"
SIGNAL = "Signal"
SIGNAL_VALUE = "{csq}/31 ({dbm} dBm, {quality})"
SIGNAL_UNKNOWN = "inconnu (99/31)"
# Received signal strength (AT+CSQ 0..31, 2 dB steps from -113 dBm): what it means for a call
SIGNAL_QUALITY = (  # (lowest csq, words)
    (20, "excellent"),
    (15, "bon"),
    (10, "moyen"),
    (1, "faible"),
    (0, "très faible"),
)
FIRMWARE = "Version logicielle"
MAP_TITLE = "Carte"
POSITIONS_TITLE = "Positions"
COL_FIX_TIME = "Heure du point"
COL_AGE = "Âge"
COL_METHOD = "Méthode"
COL_ACCURACY = "Précision"
COL_COORDS = "Coordonnées"
COL_RECEIVED = "Reçue à"
COL_FIX = "Point"
COL_PLACE_COORDS = "Lieu et coordonnées"
VIA = "reçue par {channels}"
COPY = "Copier"
COPIED = "Copié"
COORDS_DECIMAL = "Décimal"
COORDS_DM = "Degrés-minutes"
BASEMAP_NONE_WORDS = "Fond de carte non installé : chaque position est décrite par rapport à la commune la plus proche."
POSITION_CHANNELS = {"http": "Données", "mqtt": "Données", "data": "Données", "sms": "SMS"}
REPORTED = "signalé"  # "Appel : sonnerie, signalé il y a 12 s"
# Positions in words (places.py): "1,2 km au nord-est de Dumbéa"
DISTANCE_M = "{n} m"
DISTANCE_KM = "{n} km"
DIRECTIONS = ("au nord", "au nord-est", "à l'est", "au sud-est", "au sud", "au sud-ouest",
              "à l'ouest", "au nord-ouest")
OF = "de {name}"
OF_ELIDED = "d'{name}"
PLACE_FROM = "{distance} {direction} {of}"
PLACE_CENTRE = "au centre {of}"
NORTH, SOUTH, EAST, WEST = "N", "S", "E", "O"
TIMELINE_TITLE = "Chronologie des canaux"
COL_TIME = "Heure"
COL_CHANNEL = "Canal"
COL_EVENT = "Événement"
COL_BY = "Par"
CHANNEL_LABELS = {
    "data": "Données",
    "http": "Données (HTTP)",
    "mqtt": "Données (MQTT)",
    "sms": "SMS",
    "call": "Appel",
    "console": "Console",
    "button": "Bouton",
}
CALL_STATE_LABELS = {
    "idle": "pas d'appel",
    "dialing": "numérotation",
    "alerting": "sonnerie",
    "active": "en communication",
    "ended": "terminé",
    "failed": "échec",
}
SMS_STATE_LABELS = {
    "pending": "en attente",
    "sent": "envoyé",
    "delivered": "remis",
    "failed": "échec",
}
ACK_BUTTON = "Prendre en charge"
ACK_HELP = "L'appareil vibrera « secours en route » à son prochain échange."
ACKED_BY = "Prise en charge par {user} à {time}"
ACK_DONE = "Alarme prise en charge. L'appareil en sera informé à son prochain échange."
ACK_ALREADY = "Cette alarme est déjà prise en charge."
CLOSE_TITLE = "Clôturer l'alarme"
CLOSE_NOTE = "Note de clôture (obligatoire)"
CLOSE_BUTTON = "Clôturer"
CLOSE_DONE = "Alarme clôturée."
CLOSE_NOTE_REQUIRED = "Une note est obligatoire pour clôturer."
CLOSE_NOTE_TOO_LONG = "La note est trop longue (4000 caractères au plus)."
CLOSED_BY = "Clôturée par {user} à {time}"
ALREADY_CLOSED = "Cette alarme est déjà clôturée."
ALARM_UPDATED_LIVE = "Mise à jour en direct"

# Search by caller number
SEARCH_EMPTY = "Saisissez le numéro affiché sur l'appel entrant."
SEARCH_BAD = "« {number} » n'est pas un numéro de téléphone."
SEARCH_NOT_FOUND = "Aucun appareil TGD n'a le numéro {number}."
SEARCH_NO_OPEN_ALARM = "Pas d'alarme en cours pour ce numéro : fiche de l'appareil."

# Devices page
DEVICES_TITLE = "Appareils"
DEVICE_PAGE_TITLE = "Appareil {id}"
COL_LAST_HEARTBEAT = "Dernier signe de vie"
COL_BATTERY = "Batterie"
COL_SIGNAL = "Signal"
COL_FIRMWARE = "Version"
COL_FLAGS = "Alertes"
FLAG_SILENT = "SILENCIEUX"
FLAG_LOW_BATTERY = "BATTERIE FAIBLE"
FLAG_STALE_FIX = "POSITION ANCIENNE"
FLAG_NEVER_SEEN = "JAMAIS VU"
FLAG_SWITCHED_OFF = "ÉTEINT"
FLAG_OK = "OK"
DEVICES_SUMMARY = "{total} appareils — {silent} silencieux, {low} batterie faible, {stale} position ancienne"
DEVICE_ALARMS = "Alarmes de cet appareil"
NEVER = "jamais"
MILLIVOLTS = "{mv} mV"
# Fleet view of over-the-air updates (issue 17)
COL_SLOT = "Emplacement"
COL_UPDATE = "Dernière mise à jour"
OTA_RESULT_LABELS = {
    "ok": "réussie",
    "rolled_back": "annulée (retour à l'ancienne version)",
    "bad_sig": "refusée : signature invalide",
    "bad_hash": "refusée : fichier corrompu",
    "selftest_failed": "échec de l'autotest",
    "deferred": "reportée",
    "downloading": "téléchargement en cours",
    "none": "aucune",
}
OTA_UPDATE_CELL = "{version} : {result}"
OTA_OFFERED = "proposée : {version}"
ROLLOUT_LINE = "Déploiement de la version {version} : {phase}"
ROLLOUT_PHASES = {
    "canary": "appareil pilote {canary}",
    "staged": "étape {stage} sur {stages} ({percent} % des appareils)",
    "complete": "tous les appareils",
    "paused": "en pause ({reason})",
}

# Audit and SMS review
AUDIT_TITLE = "Journal d'audit"
COL_WHO = "Qui"
COL_WHEN = "Quand"
COL_WHAT = "Quoi"
COL_OBJECT = "Objet"
COL_DETAIL = "Détail"
AUDIT_FILTER_USER = "Utilisateur"
AUDIT_FILTER = "Filtrer"
AUDIT_EMPTY = "Aucune entrée."
AUDIT_ATTACKS_TITLE = "Tentatives de connexion échouées (24 h)"
AUDIT_ATTACKS_ROW = ("{failures} échecs depuis {addresses} adresse(s), "
                     "{refused} tentative(s) bloquée(s)")
SMS_TITLE = "SMS reçus (à vérifier)"
COL_SENDER = "Expéditeur"
COL_TEXT = "Texte"
COL_RESULT = "Résultat"
SMS_EMPTY = "Aucun SMS conservé."
COL_REVIEW = "Vérification"
SMS_REVIEW_BUTTON = "Marquer comme vérifié"
SMS_REVIEWED = "SMS marqué comme vérifié."
SMS_REVIEWED_BY = "vérifié par {user} le {time}"
OLDER = "Plus anciens"

# Audit action names (what the audit page shows for the codes views write)
AUDIT_ACTIONS = {
    "view_alarm": "a consulté l'alarme",
    "view_case": "a consulté le dossier",
    "view_positions": "a consulté les positions",
    "view_device": "a consulté l'appareil",
    "view_devices": "a consulté la liste des appareils",
    "view_audit": "a consulté le journal d'audit",
    "view_sms": "a consulté les SMS reçus",
    "review_sms": "a marqué un SMS comme vérifié",
    "search_number": "a recherché un numéro",
    "ack_alarm": "a pris en charge l'alarme",
    "close_alarm": "a clôturé l'alarme",
    "release_upload": "a déposé une version du logiciel",
    "release_refused": "a déposé une version refusée",
    "release_key_trust": "a ajouté une clé de signature des versions",
    "release_key_distrust": "a retiré une clé de signature des versions",
    "rollout_start": "a lancé un déploiement",
    "rollout_pause": "a mis en pause un déploiement",
    "rollout_resume": "a repris un déploiement",
    "rollout_stop": "a remplacé un déploiement",
    "rollout_paused": "a mis en pause un déploiement (automatique)",
    "rollout_staged": "a passé un déploiement à l'étape suivante",
    "rollout_complete": "a étendu un déploiement à tous les appareils",
    "rollout_canary": "a repris un déploiement (appareil pilote)",
    "login": "s'est connecté",
    "logout": "s'est déconnecté",
}

# Strings the page scripts need (passed as JSON, never inline script)
JS = {
    "ago": "il y a {d}",
    "in_future": "dans le futur",
    "seconds": "{n} s",
    "minutes": "{n} min",
    "minutes_seconds": "{m} min {s} s",
    "hours": "{h} h {m} min",
    "days": "{d} j {h} h",
    "stale": STALE,
    "live": LIVE_CONNECTED,
    "reconnecting": LIVE_RECONNECTING,
    "new_alarm": NEW_ALARM_BANNER,
    "open_it": "cliquer pour l'ouvrir",
    "sound_on": SOUND_ON,
    "sound_off": SOUND_OFF,
    "sound_blocked": SOUND_BLOCKED,
    "copy": COPY,
    "copied": COPIED,
    "method": METHOD_LABELS,
    "accuracy": ACCURACY,
    "latest_fix": "Dernière position",
    "address_marker": "Adresse du dossier",
}

# Channel timeline: what each recorded event kind means (unknown kinds show as recorded)
TIMELINE_KINDS = {
    "created": "alarme ouverte",
    "alarm": "message d'alarme reçu",
    "message": "message reçu",
    "position": "position reçue",
    "heartbeat": "signe de vie",
    "call": "appel",
    "call_state": "appel",
    "sms": "SMS d'alerte (AML) reçu",
    "aml": "SMS d'alerte (AML) reçu",
    "sms_state": "SMS d'alerte",
    "acknowledged": "prise en charge",
    "closed": "clôture",
    "ack_delivered": "appareil informé de la prise en charge",
    "close_delivered": "appareil informé de la clôture",
    "last_gasp": "dernier message (batterie ou arrêt)",
    "low_battery": "batterie faible",
    "last_known_position": "SMS sans position : dernière position connue de l'appareil (voir son âge)",
    "sms_review": "SMS non conforme reçu de l'appareil (à vérifier)",
    "aml_imei_mismatch": "SMS d'alerte : IMEI différent de celui enregistré",
}
FLAG_LABELS = {
    "silent": FLAG_SILENT,
    "never_seen": FLAG_NEVER_SEEN,
    "switched_off": FLAG_SWITCHED_OFF,
    "low_battery": FLAG_LOW_BATTERY,
    "stale_fix": FLAG_STALE_FIX,
}
SMS_STATUS_LABELS = {
    "accepted": "accepté",
    "rejected": "refusé",
    "unknown_sender": "expéditeur inconnu",
    "review": "à vérifier",
}
TIMELINE_AML_SMS = "SMS d'alerte (AML)"
TIMELINE_REPRESS = "Bouton d'alarme maintenu à nouveau (appui n° {n}) : l'alarme ouverte est relancée"
TIMELINE_REPORTED_BY_HANDSET = "(signalé par l'appareil)"
TIMELINE_AML_FIX = "position {method}, précision ±{acc} m (fiabilité {confidence} %), point de {time}"
TIMELINE_AML_NO_FIX = "sans position"
TIMELINE_ACKNOWLEDGED = "Prise en charge par {user}"
TIMELINE_CLOSED = "Clôture par {user} : {note}"
TIMELINE_LAST_KNOWN = ("SMS sans position : la dernière position connue de l'appareil est "
                       "affichée ({method}, prise {minutes} min avant ce SMS)")
TIMELINE_IMEI = ("SMS d'alerte : IMEI du téléphone {sent}, différent de l'IMEI enregistré "
                 "{known} (carte SIM déplacée ?)")
TIMELINE_LAST_GASP = "Dernier message : batterie à {mv} mV, l'appareil s'éteint"
TIMELINE_TECHNICAL = "{text} (détail technique : {detail})"
TIMELINE_UNKNOWN = "événement « {kind} »"  # a kind this console does not know yet
TIMELINE_MESSAGE = "Message « {type} » n° {seq} reçu, position : {method}"
MESSAGE_TYPE_LABELS = {
    "alarm": "alarme",
    "position": "position",
    "heartbeat": "signe de vie",
    "low_battery": "batterie faible",
    "last_gasp": "dernier message",
    "test": "test",
}
